-- A new task replaces an older result of the same id (a task re-run under a fixed id), within
-- the statement that inserts it: a single enqueue is then one statement, with no transaction
-- around it.
CREATE TRIGGER tasks_forget_old_result AFTER INSERT ON tasks
BEGIN
    DELETE FROM results WHERE id = NEW.id;
END;
