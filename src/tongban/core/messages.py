"""Messages that reach the catalogue only through this module.

Some user-visible texts are not literal arguments of a ``gettext`` call where they are used: the
``title`` of each :class:`~tongban.core.errors.DomainError` (shown as ``lang.gettext(exc.title)`` on
HTML error pages) and the titles of the HTTP errors picked from a dict in ``tongban.web.app``.
``N_`` marks them for extraction (``scripts/i18n.sh``) and returns them unchanged; nothing needs to
import this module at run time. ``tests/core/test_i18n.py`` checks that every error title is here.
"""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it."""
    return message


#: Titles of the domain errors (tongban.core.errors, .http, .auth, tongban.web.api).
ERROR_TITLES = (
    N_("Bad request"),
    N_("Not found"),
    N_("Conflict"),
    N_("Invalid input"),
    N_("Authentication required"),
    N_("Forbidden"),
    N_("Precondition failed"),
    N_("Payload too large"),
    N_("The application has problems to fix"),
    N_("Holiday schedule not known for that year"),
    N_("The form has expired"),
    N_("Not ready"),
    N_("Too many attempts"),
    N_("Service unavailable"),
    # --- departments, notices, documents ---
    N_("The webhook signature is not valid"),
    N_("The webhook timestamp is too far from the current time"),
    # --- ratings ---
    N_("The case is not closed yet"),
    N_("The case has been rated already"),
    N_("The rating period has ended"),
    N_("Only the person served may rate this case"),
    # --- hotline ---
    N_("The ticket is not in a state that allows this"),
    N_("The ticket is not held by your unit"),
    N_("No responsible unit found"),
    N_("The ticket has no confirmed category"),
    N_("No classifier has been trained"),
)

#: Titles and texts of the generic HTML error pages (tongban.web.app).
HTTP_ERROR_TEXTS = (
    N_("Not found"),
    N_("Method not allowed"),
    N_("Error"),
    N_("Internal error"),
    N_("An unexpected error occurred."),
)
