"""An avro topic in three versions, for the registry's evolution tests.

v1; v2 adds a field with a default (backward compatible); v3 adds one
without a default (refused), and declares a new topic that must not be
created when it is refused. Their Avro record name is the event type,
`Account`, in every version.
"""

from decimal import Decimal

from pydantic import BaseModel

from pipeline import Catalogue, TopicSpec


class AccountV1(BaseModel):
    account_id: str
    balance: Decimal


class AccountV2(AccountV1):
    currency: str = "EUR"


class AccountV3(AccountV2):
    owner: str


def accounts(model: type[BaseModel]) -> TopicSpec[BaseModel]:
    return TopicSpec(
        "accounts",
        model,
        key_field="account_id",
        partitions=2,
        replication_factor=1,
        format="avro",
        event_type="Account",
    )


V1 = Catalogue([accounts(AccountV1)])
V2 = Catalogue([accounts(AccountV2)])
V3 = Catalogue(
    [
        accounts(AccountV3),
        TopicSpec("audit", AccountV3, key_field="account_id", partitions=1, replication_factor=1),
    ]
)
