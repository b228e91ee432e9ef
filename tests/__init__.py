"""The test suite (a package so that ``tests.doubles`` has one import path everywhere)."""
