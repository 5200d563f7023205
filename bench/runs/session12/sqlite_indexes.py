import sqlite3, random, time, os, sys
def run(page, drop_user, n_batches=600, batch=100, pre=300000):
    p='/tmp/sq/db.sqlite'
    for s in ['', '-wal', '-shm']:
        try: os.remove(p+s)
        except FileNotFoundError: pass
    c=sqlite3.connect(p, isolation_level=None)
    c.execute(f'pragma page_size={page}')
    c.execute('pragma journal_mode=wal'); c.execute('pragma synchronous=full'); c.execute('pragma cache_size=-65536'); c.execute('pragma wal_autocheckpoint=0')
    c.execute('create table pixel_events(id integer primary key, x int not null, y int not null, color int not null, user_id int not null, placed_at int not null, tile_seq int not null, action_id int)')
    c.execute('create index a on pixel_events(placed_at)')
    if not drop_user: c.execute('create index b on pixel_events(user_id, placed_at)')
    c.execute('create index c on pixel_events(x,y,tile_seq)')
    c.execute('create index d on pixel_events(user_id,id)')
    t=0; r=random.Random(1)
    def rows(k):
        nonlocal t
        out=[]
        for _ in range(k):
            t+=1
            out.append((r.randrange(2000), r.randrange(2000), r.randrange(16), r.randrange(100000), 1700000000000+t//10, t))
        return out
    c.execute('begin'); c.executemany('insert into pixel_events(x,y,color,user_id,placed_at,tile_seq) values (?,?,?,?,?,?)', rows(pre)); c.execute('commit')
    c.execute('pragma wal_checkpoint(truncate)')
    data=[rows(batch) for _ in range(n_batches)]
    cpu0=time.process_time(); w0=time.time()
    for i,b in enumerate(data):
        c.execute('begin'); c.executemany('insert into pixel_events(x,y,color,user_id,placed_at,tile_seq) values (?,?,?,?,?,?)', b); c.execute('commit')
        if i % 100 == 99: c.execute('pragma wal_checkpoint(restart)')
    cpu=time.process_time()-cpu0; wall=time.time()-w0
    print(f'page={page} drop_user={drop_user}: cpu {cpu/(n_batches*batch)*1e6:.1f} us/event, wall {wall/(n_batches*batch)*1e6:.1f} us/event', flush=True)
for rep in range(2):
    for page in (4096, 1024):
        for drop in (False, True):
            run(page, drop)
