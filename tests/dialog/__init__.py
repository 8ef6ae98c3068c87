"""Tests of bot.dialog: loading, validating, stepping and drawing dialog graphs."""
