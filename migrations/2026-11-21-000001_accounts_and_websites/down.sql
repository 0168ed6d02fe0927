DROP TABLE alert_channels;
DROP TABLE websites;
DROP TABLE api_keys;
DROP TABLE users;
