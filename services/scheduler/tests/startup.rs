//! The compiled `scheduler` binary starts, reports ready and stops on SIGTERM.

overlaps_shared::service_startup_tests!("scheduler");
