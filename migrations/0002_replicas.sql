CREATE TABLE `replica_position` (
	`id` integer PRIMARY KEY NOT NULL,
	`epoch` text NOT NULL,
	`stream_id` text NOT NULL,
	`seq` integer NOT NULL,
	`carries_older_state` integer NOT NULL,
	`updated_at` integer NOT NULL,
	CONSTRAINT "replica_position_single_row" CHECK("replica_position"."id" = 1)
);
--> statement-breakpoint
DROP TABLE `sync_state`;--> statement-breakpoint
DROP INDEX `organization_invitations_status_expires_idx`;--> statement-breakpoint
DROP INDEX `organization_invitations_confirmed_idx`;