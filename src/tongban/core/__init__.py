"""Shared base of every domain: settings, database, errors, i18n, auth, audit, templating."""
