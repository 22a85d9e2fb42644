"""Round-trip latency of small queries through the read-only SQL endpoint.

    python -m bench.sql_latency [--queries 50]

Starts an endpoint on a fresh embedded store (no worker, no ingestion) and times
clickhouse-connect's ``query`` over HTTP: the endpoint's own overhead per request.
Quote the figures as ratios against a run of the old code in the same session.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import clickhouse_connect

from sinks.sql_endpoint import SqlEndpoint

QUERIES = {
    "SELECT 1": "SELECT 1",
    "one-minute series": "SELECT toStartOfMinute(now() - number * 60) AS t, number "
    "FROM numbers(60) ORDER BY t",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=50, help="timed queries per shape")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        admin = clickhouse_connect.get_client(dsn=f"chdb://{directory}")
        admin.command("CREATE DATABASE IF NOT EXISTS shop")
        endpoint = SqlEndpoint(directory, port=0, database="shop")
        endpoint.start()
        try:
            client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint.port)
            print("| query | median ms | p90 ms |\n|---|---|---|")
            for name, sql in QUERIES.items():
                client.query(sql)  # warm-up
                times = []
                for _ in range(args.queries):
                    started = time.perf_counter()
                    client.query(sql)
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                p90 = times[int(len(times) * 0.9) - 1]
                print(f"| {name} | {statistics.median(times):.1f} | {p90:.1f} |")
        finally:
            endpoint.stop()
            admin.close()


if __name__ == "__main__":
    main()
