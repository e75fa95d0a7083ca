CREATE TABLE `organizations` (
	`id` text PRIMARY KEY NOT NULL,
	`confirmed_at` integer NOT NULL,
	`source` text NOT NULL,
	`deleted_at` integer
);
--> statement-breakpoint
ALTER TABLE `replica_position` ADD `organizations_listed` integer DEFAULT false NOT NULL;