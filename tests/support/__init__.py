"""Test support that the benchmarks start too: `python -m support.fake_api`, run from tests/.

It lives beside the tests, outside the package, so the wheel ships only what users run.
"""
