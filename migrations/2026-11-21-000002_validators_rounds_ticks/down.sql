DROP FUNCTION drop_tick_partitions(DATE);
DROP FUNCTION ensure_tick_partitions(DATE, INTEGER);
DROP TABLE ticks;
DROP TABLE check_assignments;
DROP TABLE rounds;
DROP TABLE validators;
