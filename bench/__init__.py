"""Benchmark harness: amina-sync against a hand-written pandas baseline and a download-only floor.

Run `python -m bench --help`. The fake KoBo server lives in the parent process; every timed contender
runs in a fresh child process (`python -m bench.child`), so its peak RSS is its own.
"""
