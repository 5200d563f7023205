import sqlite3, time, os
p='/tmp/sq/big.sqlite'
N=5000000
c=sqlite3.connect(p, isolation_level=None)
t=time.time()
c.execute('create index if not exists pixel_events_placed_at_user on pixel_events(placed_at, user_id)')
print(f'index build {time.time()-t:.1f} s')
c.close()
for label, sql in [('covering placed_at,user_id', 'SELECT +user_id, MAX(placed_at) FROM pixel_events INDEXED BY pixel_events_placed_at_user WHERE placed_at >= ? GROUP BY +user_id'),
                   ('new plan (placed_at range)', 'SELECT +user_id, MAX(placed_at) FROM pixel_events INDEXED BY pixel_events_placed_at WHERE placed_at >= ? GROUP BY +user_id'),
                   ('old plan', 'SELECT user_id, MAX(placed_at) FROM pixel_events INDEXED BY pixel_events_user WHERE placed_at >= ? GROUP BY user_id')]:
    for rep in range(2):
        c=sqlite3.connect(p)
        t=time.time(); rows=c.execute(sql, (1700000000000 + N//3 - 3600000,)).fetchall(); dt=time.time()-t
        plan=[r[3] for r in c.execute('explain query plan '+sql, (0,))]
        print(f'{label}: {dt:.2f} s, {len(rows)} users, {plan}', flush=True)
        c.close()
