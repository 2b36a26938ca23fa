"""Same data, or an explicit choice: eval and resume compare the data loaded now with the checkpoint's record.

Every checkpoint records the identity of the data its run read (:mod:`linzoo.data.identity`).
eval needs the same test split (other train/validation splits leave the test unchanged); a resume
needs all three splits the same. Anything else is refused unless ``allow_other_data=true``, and
then ``metrics.json`` records which data was used and that it was not the checkpoint's.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from linzoo.common.errors import UserValueError
from linzoo.data.identity import SPLITS, describe_identity, identity_differences

log = logging.getLogger(__name__)

__all__ = ["OtherDataError", "check_same_data"]

WHY = {
    "eval": (
        "tested",
        ("test",),
        "its test metrics there would not be comparable with its run's (another split seed can put training "
        "images into the test split; another dataset or folder scores other images)",
    ),
    "resume": ("trained", SPLITS, "resuming would continue training on other data under the same run"),
}


class OtherDataError(UserValueError):
    """The data loaded now is not the data the checkpoint's run read, and the user did not allow it."""


def check_same_data(
    recorded: dict[str, Any] | None,
    now: dict[str, Any],
    *,
    ckpt_path: str,
    job: Literal["eval", "resume"],
    allow_other_data: bool,
) -> bool | None:
    """True: the data of ``job`` is the checkpoint's; False: it is not, and ``allow_other_data`` let it
    through (with a warning); None: the checkpoint predates the record, so there is nothing to compare.

    Raises :class:`OtherDataError` naming what differs, and the two ways forward, otherwise.
    """
    if not recorded:
        log.info("%s records no data identity (written by an older linzoo): the data is not compared.", ckpt_path)
        return None
    verb, splits, consequence = WHY[job]
    differences = identity_differences(recorded, now, splits=splits)
    if not differences:
        return True
    what = "; ".join(differences)
    if allow_other_data:
        log.warning("allow_other_data=true: %s was %s on other data (%s).", ckpt_path, verb, what)
        return False
    raise OtherDataError(
        f"ckpt_path={ckpt_path} was {verb} on {describe_identity(recorded)}, but the data loaded now differs: "
        f"{what}. Refused: {consequence}. Fix: drop the data.* overrides (and point data.root or LINZOO_DATA at "
        "the run's data), or add allow_other_data=true to use this data on purpose (metrics.json then records it)."
    )
