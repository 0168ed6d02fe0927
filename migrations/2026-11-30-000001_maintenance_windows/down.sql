ALTER TABLE incidents DROP COLUMN opened_in_maintenance;
ALTER TABLE website_hourly_rollups DROP COLUMN maintenance_checks;
DROP TABLE maintenance_windows;
