#!/usr/bin/env python3
"""What each outbox index costs a delivery, in instructions.

    outbox_index_cost.py STATE [N]

STATE is a tactd state whose outbox holds at least N (default 9000) sms
notifications, such as the one `KEEP=1 tests/bench/delivery_daemon.py
build-bench drain 30000` leaves behind (it prints the folder). On a copy,
every entry is made pending again and its attempts and contacts removed;
then the sqlite3 shell runs, under valgrind's callgrind, what the delivery
loop asks of the store for N notifications in rounds of 30: the claim (the
statement of claim_due_notifications() in daemon/store/sqlite_store.cpp,
in a transaction of its own) and, for each entry, the delivered verdict's
UPDATE, its attempt and its contact (mark_delivered()), each round one
transaction, synchronous=FULL as tactd runs. It does so with the schema as
it is, then with each of the indexes below dropped, and prints the
instructions per notification and what the index costs. The shell parses
every statement in every run alike, so the differences are the indexes'
own. The statements are copies: keep them in step with the store's.

Needs valgrind and the sqlite3 shell. Not part of .ci/bench (it needs a
state left by another bench); the figures are in docs/performance.md.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

INDEXES = ["outbox_action_due", "outbox_pending", "outbox_status", "outbox_sending"]
ROUND = 30
COLUMNS = ("id, idempotency_key, due_at, rule, kind, customer, entity, channel, recipient, subject, body, "
           "locale, time_zone, status, attempts, next_attempt_at, last_error, event, sending_since, action, "
           "action_state, action_answer, action_attempts, action_next_at, action_detail")
NOW = 4102444800000  # 2100-01-01: every entry is due


def sqlite(db, sql):
    return subprocess.run(["sqlite3", db], input=sql, capture_output=True, text=True, check=True).stdout


def workload(ids):
    out = ["PRAGMA synchronous=FULL;"]
    for start in range(0, len(ids), ROUND):
        out.append("BEGIN IMMEDIATE;")
        out.append(
            f"UPDATE outbox SET sending_since = {NOW}, lease_until = {NOW + 60000} WHERE id IN (SELECT id FROM "
            "outbox WHERE channel = 'sms' AND status = 'pending' AND (action_state IS NULL OR action_state != "
            f"'pending') AND max(COALESCE(next_attempt_at, due_at), COALESCE(lease_until, 0)) <= {NOW} ORDER BY "
            f"max(COALESCE(next_attempt_at, due_at), COALESCE(lease_until, 0)), id LIMIT {ROUND}) RETURNING "
            f"{COLUMNS};")
        out.append("COMMIT;")
        out.append("BEGIN IMMEDIATE;")
        for i in ids[start:start + ROUND]:
            out.append("UPDATE outbox SET status = 'delivered', attempts = attempts + 1, next_attempt_at = NULL, "
                       f"last_error = NULL, sending_since = NULL, lease_until = NULL WHERE id = {i} "
                       "RETURNING attempts;")
            out.append("INSERT INTO delivery_attempts (outbox_id, number, at, outcome, detail) "
                       f"VALUES ({i}, 1, {NOW}, 'delivered', 'HTTP 200');")
            out.append("INSERT INTO contacts (customer, at, kind, rule, entity, channel, idempotency_key) "
                       f"SELECT customer, {NOW}, kind, rule, entity, channel, idempotency_key FROM outbox "
                       f"WHERE id = {i};")
        out.append("COMMIT;")
    return "\n".join(out) + "\n"


def instructions(work, state, drop, sql):
    db = os.path.join(work, "state.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    shutil.copy(state, db)
    sqlite(db, "PRAGMA journal_mode=WAL; UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
           "sending_since = NULL, lease_until = NULL; DELETE FROM delivery_attempts; DELETE FROM contacts; "
           + "".join(f"DROP INDEX {index};" for index in drop) + " PRAGMA wal_checkpoint(TRUNCATE);")
    run = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "sqlite3", db],
                         input=sql, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr[-2000:])
    return int(re.search(r"refs:\s+([\d,]+)", run.stderr).group(1).replace(",", ""))


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    state = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) == 3 else 9000
    for tool in ("valgrind", "sqlite3"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (apt-get install {tool})")
    ids = [int(line) for line in sqlite(
        state, "SELECT id FROM outbox WHERE channel = 'sms' AND (action_state IS NULL OR action_state != 'pending') "
        f"ORDER BY due_at, id LIMIT {n};").split()]
    if len(ids) < n:
        sys.exit(f"{state} holds {len(ids)} sms notifications, fewer than {n}")
    sql = workload(ids)
    work = tempfile.mkdtemp(prefix="tactd-index-cost-")
    try:
        base = instructions(work, state, [], sql)
        print(f"{'schema as it is':28} {base / n:10.0f} instructions a notification")
        for index in INDEXES:
            without = instructions(work, state, [index], sql)
            print(f"{'without ' + index:28} {without / n:10.0f}   the index costs {(base - without) / n:7.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
