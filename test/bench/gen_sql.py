"""gen_sql — writes the SQL script for the sqlite3 row of scripts/bench.sh:
tables filled by explicit INSERT statements (parser and VDBE churn) and by
recursive CTEs (bulk), indexes, joins, grouping, sorting, string functions and
a window function.  The output is deterministic, so bench.sh compares it
across allocators.   usage: python3 gen_sql.py SCALE > bench.sql
"""
import random
import sys

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
n_cust = max(200, int(20000 * scale))
n_ord = max(2000, int(300000 * scale))
rng = random.Random(2024)
cities = ["Berlin", "Paris", "Lisbon", "Oslo", "Rome", "Vienna", "Prague", "Dublin", "Madrid", "Athens"]
out = []
w = out.append
w("PRAGMA cache_size = -65536;\n")
w("CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, email TEXT, joined INTEGER);\n")
w("CREATE TABLE orders(id INTEGER PRIMARY KEY, cust INTEGER, item INTEGER, qty INTEGER, price REAL, note TEXT);\n")
w("CREATE TABLE item(id INTEGER PRIMARY KEY, title TEXT, category TEXT);\n")
w("BEGIN;\n")
for i in range(n_cust):
    name = "cust_%d_%s" % (i, "".join(rng.choice("abcdefghij") for _ in range(rng.randint(4, 16))))
    w("INSERT INTO customer VALUES(%d,'%s','%s','%s@example.org',%d);\n"
      % (i, name, rng.choice(cities), name, rng.randint(0, 5000)))
w("INSERT INTO item SELECT value, 'item-' || value || '-' || hex(randomblob(0) || value), "
  "'cat' || (value % 37) FROM (WITH RECURSIVE c(value) AS (SELECT 0 UNION ALL SELECT value+1 FROM c "
  "WHERE value < 4999) SELECT value FROM c);\n")
w("INSERT INTO orders SELECT value, (value * 7919) %% %d, (value * 104729) %% 5000, 1 + value %% 9, "
  "((value * 2654435761) %% 100000) / 100.0, printf('order %%08d for %%s', value, 'x' || (value %% 113)) "
  "FROM (WITH RECURSIVE c(value) AS (SELECT 0 UNION ALL SELECT value+1 FROM c WHERE value < %d) "
  "SELECT value FROM c);\n" % (n_cust, n_ord - 1))
w("COMMIT;\n")
w("CREATE INDEX orders_cust ON orders(cust);\nCREATE INDEX orders_item ON orders(item);\n")
w("CREATE INDEX customer_city ON customer(city, joined);\nCREATE INDEX orders_note ON orders(note);\n")
w("SELECT c.city, count(*), round(sum(o.qty * o.price), 2) FROM orders o JOIN customer c ON c.id = o.cust "
  "GROUP BY c.city ORDER BY c.city;\n")
w("SELECT i.category, count(DISTINCT o.cust), max(o.price) FROM orders o JOIN item i ON i.id = o.item "
  "GROUP BY i.category ORDER BY 2 DESC, 1 LIMIT 10;\n")
w("SELECT name, total FROM (SELECT c.name AS name, sum(o.qty * o.price) AS total, "
  "rank() OVER (PARTITION BY c.city ORDER BY sum(o.qty * o.price) DESC, c.id) AS r "
  "FROM customer c JOIN orders o ON o.cust = c.id GROUP BY c.id) WHERE r = 1 ORDER BY name;\n")
w("SELECT count(*), sum(length(group_concat_note)) FROM (SELECT cust, group_concat(note, ';') AS "
  "group_concat_note FROM orders GROUP BY cust);\n")
w("UPDATE orders SET note = upper(note) || '!' WHERE qty > 5;\n")
w("DELETE FROM orders WHERE price < 100;\n")
w("SELECT count(*), sum(qty), round(avg(price), 4) FROM orders;\n")
w("SELECT length(note), count(*) FROM orders GROUP BY 1 ORDER BY 1;\n")
sys.stdout.write("".join(out))
