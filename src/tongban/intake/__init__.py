"""Unified intake (办): profiles, forms, pre-check, submission, approval, deadlines and bundles."""
