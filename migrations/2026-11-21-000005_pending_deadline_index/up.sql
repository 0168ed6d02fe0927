-- Each server sweeps its own pending assignments whose deadline passed.
CREATE INDEX check_assignments_pending_deadline_idx
    ON check_assignments (server_instance, deadline_at) WHERE state = 'pending';
