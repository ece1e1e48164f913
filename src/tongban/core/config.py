"""Settings, read from the environment with the ``TONGBAN_`` prefix (and an optional ``.env`` file)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from tongban.core.crypto import Sealer


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TONGBAN_", env_file=".env", extra="ignore")

    #: Where the embedded database, uploaded files and the generated secret live.
    data_dir: Path = Field(default=Path("data"))
    #: SQLAlchemy URL. Empty means the embedded SQLite file ``<data_dir>/tongban.sqlite3``.
    database_url: str = ""
    #: Secret for signing tokens. Empty means a random one is generated once into ``<data_dir>/secret.key``.
    secret_key: SecretStr = SecretStr("")
    #: Key sealing personal data at rest (base64 of 32 bytes). Empty means one is generated once into
    #: ``<data_dir>/data.key`` (the embedded default); production sets it from its secret store.
    data_key: SecretStr = SecretStr("")
    #: Retired data keys (comma-separated), still used to open values sealed before a rotation.
    data_keys_retired: SecretStr = SecretStr("")
    #: Key of the lookup digests of identifiers (base64 of 32 bytes); it does not rotate with the data key.
    #: Empty means one is generated once into ``<data_dir>/lookup.key``.
    lookup_key: SecretStr = SecretStr("")
    host: str = "127.0.0.1"
    port: int = 8000
    #: Mark cookies Secure and send HSTS; set when served over HTTPS (always in production).
    https: bool = False
    session_hours: int = 12
    log_level: str = "INFO"
    #: Render logs as JSON lines (production) or as readable console lines (development).
    log_json: bool = True
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = 2_000_000
    #: Largest file upload accepted, in bytes (scanned certificates are larger than other requests).
    max_upload_bytes: int = 20 * 1024 * 1024 + 64 * 1024
    #: Argon2id costs of new password hashes (iterations, memory in KiB, lanes); the defaults are RFC 9106's
    #: second recommended option. Lower them only where passwords are throwaway (the test suite does).
    password_hash_time_cost: int = Field(default=3, ge=1, le=100)
    password_hash_memory_kib: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)
    password_hash_parallelism: int = Field(default=4, ge=1, le=64)
    #: Semantic search model: ``e5`` (multilingual-e5-small, bundled, CPU) or ``none`` (lexical only).
    embedding: Literal["e5", "none"] = "e5"
    #: Threads the embedding model uses per process (on a 2-core machine 1 is often fastest).
    embedding_threads: int = Field(default=1, ge=1, le=64)
    #: Threads for bulk embedding in command-line jobs (ingest, rebuild); default: every CPU. Measured on
    #: 2 cores: 15.5 passages/s with 2 threads against 8.2 with 1 (BENCHMARKS.md).
    embedding_batch_threads: int | None = Field(default=None, ge=1, le=64)
    #: OpenAI-compatible chat endpoint, up to and including ``/v1`` (vLLM, Ollama, a Qwen or DeepSeek
    #: deployment), e.g. ``http://127.0.0.1:11434/v1``. Empty means no language model (the offline default).
    llm_base_url: str = ""
    #: Model name sent to the endpoint (``qwen2.5:7b-instruct``, ``deepseek-chat`` ...); required with a URL.
    llm_model: str = ""
    #: Bearer token for the endpoint; empty sends no ``Authorization`` header.
    llm_api_key: SecretStr = SecretStr("")
    #: Seconds to wait to connect, and between bytes of an answer, before giving up on the endpoint.
    llm_timeout_s: float = Field(default=30.0, gt=0, le=600)
    #: Default upper bound on the tokens of one answer.
    llm_max_tokens: int = Field(default=512, ge=16, le=8192)
    # --- departments, notices, documents ---
    #: The address this platform is reached at from outside (departments' systems post their status
    #: callbacks to it), e.g. ``https://tongban.example.gov.cn``. Empty means ``http://<host>:<port>``.
    public_url: str = ""
    #: Mail server for notices: ``smtp://user:password@host:587`` (or ``smtps://`` for TLS from the start).
    #: Empty means emails are written to ``<data_dir>/outbox/email/*.eml``.
    smtp_url: SecretStr = SecretStr("")
    #: Upgrade ``smtp://`` connections with STARTTLS (turn off only for a server on the same host).
    smtp_starttls: bool = True
    #: The From address of notice emails.
    mail_from: str = "通办 <noreply@tongban.invalid>"
    #: HTTP SMS gateway (POST JSON ``{"id", "to", "text"}`` with ``X-API-Key``). Empty means SMS are
    #: written to ``<data_dir>/outbox/sms/*.json``.
    sms_gateway_url: str = ""
    sms_api_key: SecretStr = SecretStr("")
    #: Seconds to wait for a mail server, SMS gateway or department system before an attempt fails.
    notify_timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: Attempts to deliver an outbox message (backoff 30 s doubling, at most 1 h) before it is given up.
    outbox_max_attempts: int = Field(default=10, ge=1, le=50)
    #: Seconds between delivery passes of the web server's own outbox loop; 0 turns it off (then schedule
    #: ``tongban intake deliver-outbox``).
    outbox_interval_s: float = Field(default=15.0, ge=0, le=3600)
    #: The hotline's Open311 ``jurisdiction_id`` (GeoReport v2, under ``/open311/v2``): a request that names
    #: another jurisdiction is answered 404; one that names none is served (the endpoint serves only this).
    open311_jurisdiction: str = "tongban.local"

    def resolved_public_url(self) -> str:
        return (self.public_url.strip() or f"http://{self.host}:{self.port}").rstrip("/")

    def batch_threads(self) -> int:
        return self.embedding_batch_threads or max(1, len(os.sched_getaffinity(0)))

    @model_validator(mode="after")
    def _argon2_memory(self) -> Settings:
        if self.password_hash_memory_kib < 8 * self.password_hash_parallelism:
            raise ValueError("password_hash_memory_kib must be at least 8 × password_hash_parallelism")
        return self

    def configure_password_hashing(self) -> None:
        """Make new password hashes with these settings' costs (the web app and the CLI call it); costs
        below the defaults are logged as a warning (only a test suite should run with them)."""
        import logging

        from tongban.core import auth

        fields = type(self).model_fields
        if any(
            getattr(self, name) < fields[name].default
            for name in ("password_hash_time_cost", "password_hash_memory_kib", "password_hash_parallelism")
        ):
            # on stderr (a command's output stays clean), in the log format once logging is configured
            logging.getLogger("tongban.auth").warning(
                "password hash costs below the defaults: time %s, memory %s KiB, parallelism %s",
                self.password_hash_time_cost,
                self.password_hash_memory_kib,
                self.password_hash_parallelism,
            )

        auth.configure_password_hashing(
            time_cost=self.password_hash_time_cost,
            memory_kib=self.password_hash_memory_kib,
            parallelism=self.password_hash_parallelism,
        )

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tongban.sqlite3').resolve()}"

    def resolved_secret(self) -> str:
        if self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        import secrets

        return self._key_file("secret.key", lambda: secrets.token_urlsafe(48))

    def _key_file(self, name: str, make: Callable[[], str]) -> str:
        """A secret kept in ``<data_dir>/<name>``: created once, readable by the owner only; when several
        processes start at once, the first to create it wins and the others read it."""
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(make())
        return path.read_text().strip()

    def resolved_data_key(self) -> str:
        if self.data_key.get_secret_value():
            return self.data_key.get_secret_value()
        from tongban.core.crypto import new_key

        return self._key_file("data.key", new_key)

    def resolved_lookup_key(self) -> str:
        if self.lookup_key.get_secret_value():
            return self.lookup_key.get_secret_value()
        from tongban.core.crypto import new_key

        return self._key_file("lookup.key", new_key)

    def sealer(self) -> Sealer:
        from tongban.core.crypto import Sealer

        retired = self.data_keys_retired.get_secret_value().split(",")
        return Sealer(self.resolved_data_key(), retired, lookup_key=self.resolved_lookup_key())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
