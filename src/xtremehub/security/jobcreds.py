"""Job credentials: the executor derives one job token per job from the submitter's token.

A :class:`~xtremehub.compute.executor.FunctionExecutor` given ``token=`` (or
``credentials=``) exchanges the submitter's OIDC token, once per ``map``/``call_async``, for a
*job token* bound to the executor's own job id, the datasets and the purpose, and sets it as
``XHUB_JOB_TOKEN`` in the environment of that job's calls. Workers never see the submitter's
token; a key release in a worker names the job it was made for in the audit log.

Example:
    >>> class Minter:  # stands in for a KeyService or a KeyClient
    ...     def issue_job_token(self, bearer, *, job_id, datasets, purpose):
    ...         return f"job-token({bearer},{job_id},{sorted(datasets)},{purpose})"
    >>> creds = JobCredentials("t0k", Minter(), datasets=("genomes",), purpose="research")
    >>> creds.env_for("ab12cd-M000")
    {'XHUB_JOB_TOKEN': "job-token(t0k,ab12cd-M000,['genomes'],research)"}
    >>> "t0k" in repr(creds)
    False
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from xtremehub.config import Settings
from xtremehub.errors import ConfigError
from xtremehub.security.identity import TokenSource, current_token
from xtremehub.security.keyservice_client import JOB_TOKEN_ENV, KEY_SOURCE_SCHEMES, key_client_from_url

__all__ = ["JOB_TOKEN_ENV", "JobCredentials", "JobTokenMinter"]


class JobTokenMinter(Protocol):
    """Exchanges a submitter's token for a job token: a ``KeyService`` or a ``KeyClient``."""

    def issue_job_token(self, bearer: str, *, job_id: str, datasets: Iterable[str], purpose: str | None) -> str: ...


@dataclass(frozen=True)
class JobCredentials:
    """Who submits jobs, and where their job tokens come from.

    Attributes:
        token: the submitter's access token (a string, a provider such as ``StoredToken``, or a
            callable; a provider is asked for each job, so it refreshes).
        minter: the key service (in process) or its HTTPS client.
        datasets: the datasets the job tokens cover.
        purpose: the purpose of use the job tokens carry (policies may require one).
    """

    token: TokenSource = field(repr=False)
    minter: JobTokenMinter
    datasets: tuple[str, ...] = ()
    purpose: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))

    def env_for(self, job_id: str) -> dict[str, str]:
        """The environment of ``job_id``'s calls: its job token.

        Raises:
            AuthenticationFailed: the submitter's token is invalid or expired.
            Forbidden / KeyReleaseDenied: the key service refuses the job token.
        """
        bearer = current_token(self.token)
        job_token = self.minter.issue_job_token(bearer, job_id=job_id, datasets=self.datasets, purpose=self.purpose)
        return {JOB_TOKEN_ENV: job_token}

    @classmethod
    def from_settings(
        cls,
        token: TokenSource,
        settings: Settings,
        *,
        datasets: Iterable[str] | None = None,
        purpose: str | None = None,
    ) -> JobCredentials:
        """Credentials against the key service of ``settings.encryption.keys``.

        ``datasets`` default to ``settings.encryption.dataset``.

        Raises:
            ConfigError: the settings name no key service (``keyservice://...``).
        """
        source = settings.encryption.keys
        if not source or source.partition("://")[0] not in KEY_SOURCE_SCHEMES:
            raise ConfigError(
                "token= needs a key service to derive job tokens from: set encryption.keys "
                "(XHUB_ENCRYPTION_KEYS) to keyservice://HOST:PORT?ca=..., or pass credentials="
            )
        minter = key_client_from_url(source)
        names = tuple(datasets) if datasets is not None else (settings.encryption.dataset,)
        return cls(token, minter, names, purpose)
