# The restart's two reads of each user's last placement in the last hour, on the log restart.py
# made (5 million events, 100,000 users), with a users table of 100,000 ids added here.
import sqlite3, time
c = sqlite3.connect('/tmp/sq/big.sqlite', isolation_level=None)
c.execute('create table if not exists users(id integer primary key, username text)')
if c.execute('select count(*) from users').fetchone()[0] == 0:
    c.execute('begin')
    c.executemany('insert into users(id, username) values (?,?)', ((i, 'u%d' % i) for i in range(1, 100001)))
    c.execute('commit')
c.execute('drop index if exists pixel_events_placed_at_user')
N = 5000000
for label, T in [('hour holds the whole log', 1700000000000 + N // 3 - 3600000), ('quiet hour', 1700000000000 + N // 3 + 1)]:
    for name, sql in [
        ('estimate', 'SELECT COALESCE((SELECT MAX(id) FROM pixel_events) - (SELECT id FROM pixel_events WHERE placed_at >= ? ORDER BY placed_at LIMIT 1) + 1, 0), COALESCE((SELECT MAX(id) FROM users), 0)'),
        ('by user', 'SELECT u.id, e.placed_at FROM users u JOIN pixel_events e ON e.id = (SELECT MAX(l.id) FROM pixel_events l WHERE l.user_id = u.id) WHERE e.placed_at >= ?'),
        ('by time', 'SELECT +user_id, MAX(placed_at) FROM pixel_events WHERE placed_at >= ? GROUP BY +user_id'),
    ]:
        t = time.time()
        r = c.execute(sql, (T,)).fetchall()
        dt = time.time() - t
        print(label, name, f'{dt * 1000:.1f} ms', r[0] if name == 'estimate' else len(r))
