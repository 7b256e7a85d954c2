"""benchmarks/bench_store_backends.py cannot rot: it runs at a tiny size on the session's server
(no timing asserted: the script only prints its medians)."""

from benchmarks import bench_store_backends as bench


def test_the_benchmark_runs_on_both_backends(postgres_url, capsys):
    assert bench.main(["--blocks", "3", "--postgres-url", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "SQLite" in out and "PostgreSQL / SQLite median" in out
