"""benchmarks/bench_copy_database.py cannot rot: it runs at a tiny size on the session's server
(no timing asserted: the script only prints its medians)."""

from benchmarks import bench_copy_database as bench


def test_the_benchmark_copies_and_prints_its_phases(postgres_url, capsys):
    assert bench.main(["--blocks", "4", "--postgres-url", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "check the source" in out and "per 1,000 blocks" in out and "copy / verify" in out
