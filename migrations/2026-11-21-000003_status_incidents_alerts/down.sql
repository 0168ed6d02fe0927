DROP TABLE alert_outbox;
DROP TABLE website_hourly_rollups;
DROP TABLE incidents;
DROP TABLE website_status;
