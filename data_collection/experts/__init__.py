"""Scripted experts, one module per real env (see data_collection.policies.EXPERTS)."""
