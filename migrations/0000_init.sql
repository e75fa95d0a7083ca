CREATE TABLE `organization_invitations` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`email_address` text,
	`status` text,
	`expires_at` integer,
	`created_at` integer,
	`updated_at` integer NOT NULL,
	`confirmed_at` integer NOT NULL,
	`source` text NOT NULL,
	`deleted_at` integer,
	`raw` text
);
--> statement-breakpoint
CREATE INDEX `organization_invitations_org_created_idx` ON `organization_invitations` (`organization_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `organization_invitations_org_email_idx` ON `organization_invitations` (`organization_id`,`email_address`);--> statement-breakpoint
CREATE INDEX `organization_invitations_status_expires_idx` ON `organization_invitations` (`status`,`expires_at`);--> statement-breakpoint
CREATE INDEX `organization_invitations_confirmed_idx` ON `organization_invitations` (`confirmed_at`);