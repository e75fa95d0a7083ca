export { startSimulator, type Simulator, type SimulatorOptions } from './server.ts';
export { SimulatorStore, type CreateInvitationInput, type InvitationEventType, type SeedInput, type StoreEventType, type StoreOptions } from './store.ts';
export { DEFAULT_FAULTS, type FaultOptions } from './faults.ts';
export type { SimulatorStats } from './stats.ts';
export type { RateWindow } from './rate-limit.ts';
export type { InvitationWithOrganizationJSON, OrganizationJSON, PublicInviterDataJSON, PublicOrganizationDataJSON, SimInvitationJSON } from './model.ts';
export { WebhookDelivery, type DeliveryOptions, type DeliveryStats } from './delivery.ts';
export { seededRandom } from './random.ts';
