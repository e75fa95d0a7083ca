CREATE TABLE `organizations` (
	`id` text PRIMARY KEY NOT NULL,
	`confirmed_at` integer NOT NULL,
	`source` text NOT NULL,
	`deleted_at` integer
);
--> statement-breakpoint
ALTER TABLE `replica_position` ADD `organizations_listed` integer DEFAULT false NOT NULL;--> statement-breakpoint
-- A file that followed the stream before organizations were kept stored their states as
-- invitation rows without JSON and lacks the organizations: it loads the snapshot once more.
DELETE FROM `organization_invitations` WHERE `id` LIKE 'org\_%' ESCAPE '\';--> statement-breakpoint
DELETE FROM `replica_position`;
