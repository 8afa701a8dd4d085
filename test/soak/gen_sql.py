#!/usr/bin/env python3
"""gen_sql.py — writes a large, deterministic SQL script for the sqlite3 soak
(test/soak/sqlite.sh), exercising sqlite's heap in every way it has: the parser
on many thousands of explicit statements, rows from a few bytes to hundreds of
KiB (strings grown by replace/printf, blobs), updates that grow and shrink rows,
deletes, indexes, a trigger and a view, big sorts and GROUP BYs, group_concat
and json_group_array building long strings by realloc, window functions,
recursive CTEs, temp tables, savepoints rolled back. Every query prints
something (counts, sums, hashes of long strings by length and substrings), so
the outputs of two runs can be compared byte for byte.

usage: gen_sql.py SCALE > soak.sql      (SCALE 1 = about 6 MB of SQL)
"""
import random
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rng = random.Random(20240808)
n_people = max(500, int(40000 * scale))
n_docs = max(200, int(4000 * scale))
n_events = max(2000, int(300000 * scale))
rounds = max(2, int(8 * scale))
words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda",
         "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega"]
out = sys.stdout
w = out.write

w(".bail on\n")
w("PRAGMA cache_size = -32768;\n")
w("CREATE TABLE person(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER, city TEXT, bio TEXT);\n")
w("CREATE TABLE doc(id INTEGER PRIMARY KEY, owner INTEGER REFERENCES person(id), title TEXT, body TEXT, "
  "data BLOB);\n")
w("CREATE TABLE event(id INTEGER PRIMARY KEY, person INTEGER, kind TEXT, amount REAL, note TEXT);\n")
w("CREATE TABLE audit(id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT, len INTEGER);\n")
w("CREATE TRIGGER doc_grow AFTER UPDATE OF body ON doc WHEN length(NEW.body) > 100000 BEGIN "
  "INSERT INTO audit(what, len) VALUES('doc ' || NEW.id, length(NEW.body)); END;\n")
w("CREATE VIEW spend AS SELECT p.city AS city, e.kind AS kind, count(*) AS n, sum(e.amount) AS total "
  "FROM event e JOIN person p ON p.id = e.person GROUP BY p.city, e.kind;\n")

# Explicit INSERTs: the parser and small-object churn.
w("BEGIN;\n")
for i in range(n_people):
    name = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) + " %d" % i
    bio = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(rng.choice((0, 8, 40, 300))))
    w("INSERT INTO person VALUES(%d,'%s',%d,'%s','%s');\n"
      % (i, name, rng.randint(1, 99), rng.choice(words[:12]), bio))
w("COMMIT;\n")

# Documents: bodies from a few bytes to hundreds of KiB, blobs.
w("BEGIN;\n")
for i in range(n_docs):
    size = rng.choice((1, 10, 100, 1000, 4000, 20000, 70000, 250000)) if i % 50 == 0 else rng.randint(1, 3000)
    w("INSERT INTO doc VALUES(%d,%d,'doc %d',printf('%%.*c', %d, 'x') || '%s',zeroblob(%d));\n"
      % (i, rng.randrange(n_people), i, size, rng.choice(words), rng.choice((0, 16, 512, 8192))))
w("COMMIT;\n")

# Bulk rows from a recursive CTE.
w("INSERT INTO event SELECT value, (value * 7919) %% %d, 'k' || (value %% 17), "
  "((value * 2654435761) %% 100000) / 100.0, CASE WHEN value %% 3 = 0 THEN NULL ELSE "
  "printf('event %%d %%s', value, substr('abcdefghijklmnopqrstuvwxyz', 1 + value %% 26)) END "
  "FROM (WITH RECURSIVE c(value) AS (SELECT 0 UNION ALL SELECT value + 1 FROM c WHERE value < %d) "
  "SELECT value FROM c);\n" % (n_people, n_events - 1))
w("CREATE INDEX event_person ON event(person, kind);\nCREATE INDEX event_note ON event(note);\n")
w("CREATE INDEX person_city ON person(city, age);\nCREATE INDEX doc_owner ON doc(owner);\n")
w("SELECT 'counts', (SELECT count(*) FROM person), (SELECT count(*) FROM doc), (SELECT count(*) FROM event);\n")

for r in range(rounds):
    # Grow and shrink rows: realloc of pages and records.
    w("UPDATE doc SET body = body || replace(printf('%%.*c', 1 + (id %% 97) * %d, '-'), '-', 'ab') "
      "WHERE id %% %d = %d;\n" % (r + 1, rounds + 3, r % (rounds + 3)))
    w("UPDATE doc SET body = substr(body, 1, 1 + length(body) / 3) WHERE id %% 11 = %d;\n" % (r % 11))
    w("UPDATE person SET bio = bio || printf(' r%d %%s', name) WHERE id %% 13 = %d;\n" % (r, r % 13))
    w("DELETE FROM event WHERE id %% %d = %d;\n" % (29 + r, r))
    w("INSERT INTO event SELECT id + %d, person, kind || 'x', amount * 1.5, note FROM event WHERE id %% 41 = %d;\n"
      % ((r + 1) * 10 * n_events, r % 41))
    # Sorts, groups, long strings built by realloc, windows.
    w("SELECT 'r%d city', city, count(*), sum(age), max(length(bio)) FROM person GROUP BY city ORDER BY city;\n" % r)
    w("SELECT 'r%d spend', city, kind, n, round(total, 2) FROM spend ORDER BY total DESC, city, kind LIMIT 12;\n" % r)
    w("SELECT 'r%d concat', length(group_concat(name, ',')), substr(group_concat(name, ','), 1, 40) "
      "FROM (SELECT name FROM person ORDER BY name DESC);\n" % r)
    w("SELECT 'r%d json', length(json_group_array(json_object('id', id, 'n', note))) "
      "FROM (SELECT id, note FROM event WHERE id %% 7 = %d ORDER BY note, id);\n" % (r, r % 7))
    w("SELECT 'r%d rank', person, total, rk FROM (SELECT person, round(sum(amount), 2) AS total, "
      "rank() OVER (ORDER BY sum(amount) DESC, person) AS rk FROM event GROUP BY person) WHERE rk <= 5;\n" % r)
    w("SELECT 'r%d running', id, round(sum(amount) OVER (ORDER BY id ROWS BETWEEN 100 PRECEDING AND CURRENT ROW), 2) "
      "FROM event WHERE id %% 997 = 0 ORDER BY id LIMIT 8;\n" % r)
    w("SELECT 'r%d docs', count(*), sum(length(body)), max(length(body)), sum(length(data)) FROM doc;\n" % r)
    w("SELECT 'r%d sorted', substr(note, 1, 20), count(*) FROM event WHERE note IS NOT NULL "
      "GROUP BY substr(note, 1, 9) ORDER BY 3 DESC, 2 LIMIT 5;\n" % r)
    # Temp table and a savepoint that is rolled back.
    w("CREATE TEMP TABLE t%d AS SELECT person, group_concat(kind) AS kinds FROM event GROUP BY person;\n" % r)
    w("SELECT 'r%d temp', count(*), sum(length(kinds)) FROM t%d;\n" % (r, r))
    w("SAVEPOINT s%d;\nDELETE FROM person WHERE id %% 2 = 0;\nUPDATE doc SET body = '';\n"
      "SELECT 'r%d inside', count(*) FROM person;\nROLLBACK TO s%d;\nRELEASE s%d;\n" % (r, r, r, r))
    w("DROP TABLE t%d;\n" % r)
    w("SELECT 'r%d after', (SELECT count(*) FROM person), (SELECT sum(length(body)) FROM doc), "
      "(SELECT count(*) FROM event), (SELECT count(*) FROM audit);\n" % r)

w("SELECT 'audit', count(*), sum(len) FROM audit;\n")
w("SELECT 'check', * FROM pragma_integrity_check;\n")
w("SELECT 'done';\n")
