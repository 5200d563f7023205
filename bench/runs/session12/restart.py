import sqlite3, random, time, os
p='/tmp/sq/big.sqlite'
N=int(os.environ.get('N','5000000'))
if not os.path.exists(p):
    c=sqlite3.connect(p, isolation_level=None)
    c.execute('pragma journal_mode=wal')
    c.execute('create table pixel_events(id integer primary key, x int not null, y int not null, color int not null, user_id int not null, placed_at int not null, tile_seq int not null, action_id int)')
    r=random.Random(1)
    c.execute('begin')
    c.executemany('insert into pixel_events(x,y,color,user_id,placed_at,tile_seq) values (?,?,?,?,?,?)', ((r.randrange(2000), r.randrange(2000), r.randrange(16), r.randrange(1,100001), 1700000000000+i//3, i) for i in range(N)))
    c.execute('commit')
    c.execute('create index pixel_events_placed_at on pixel_events(placed_at)')
    c.execute('create index pixel_events_user on pixel_events(user_id, placed_at)')
    c.execute('create index pixel_events_user_id on pixel_events(user_id,id)')
    c.execute('pragma wal_checkpoint(truncate)')
    c.close()
def q(sql, label):
    os.system('sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null')
    c=sqlite3.connect(p)
    t=time.time(); rows=c.execute(sql, (1700000000000 + N//3 - 3600000,)).fetchall(); dt=time.time()-t
    plan=[r[3] for r in c.execute('explain query plan '+sql, (0,))]
    print(f'{label}: {dt:.2f} s, {len(rows)} users, {plan}', flush=True)
    c.close()
q('SELECT user_id, MAX(placed_at) FROM pixel_events WHERE placed_at >= ? GROUP BY user_id', 'old plan (covering user index)')
q('SELECT +user_id, MAX(placed_at) FROM pixel_events WHERE placed_at >= ? GROUP BY +user_id', 'new plan (placed_at range)')
q('SELECT user_id, MAX(placed_at) FROM pixel_events NOT INDEXED WHERE placed_at >= ? GROUP BY user_id', 'full table scan')
