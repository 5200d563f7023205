target/release/loadgen --url ws://127.0.0.1:39823 --server-pid 18366 --json bench/runs/memory-1000.json --quiet --clients 1000 --ramp-per-sec 500 --place-rate 0 --pan-every 0 --duration 5s --grace 0s
