-- Skiff PostgreSQL schema, version 5: the claim's read of ready tasks is planned the same way
-- whatever the table's statistics say.
--
-- After a queue drains, VACUUM (the store's or autovacuum's) records a handful of live rows over
-- the table's pages. A new backlog in those pages then looks tiny to the planner until the next
-- ANALYZE, and the claim's `ORDER BY priority DESC, seq LIMIT n` was planned as a read of every
-- ready row and a sort: 70 ms per claim with 100,000 tasks waiting, instead of 0.1 ms. Run with
-- sorting off, the ordered read of `tasks_ready` that stops after n rows is the only plan left.
-- (A function, because a setting given to it applies to it alone.)
CREATE FUNCTION claim_ready(q text, n bigint)
RETURNS TABLE (id uuid, priority smallint, seq bigint)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off
SET search_path FROM CURRENT
AS $$
BEGIN
    RETURN QUERY
    SELECT t.id, t.priority, t.seq FROM tasks t
    WHERE t.queue = q AND t.state = 0
      AND NOT EXISTS (SELECT 1 FROM paused_queues p WHERE p.queue = q)
    ORDER BY t.priority DESC, t.seq
    LIMIT n
    FOR UPDATE OF t SKIP LOCKED;
END
$$;
