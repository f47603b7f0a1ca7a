"""The GA/T 1400 collections sharpeyes sends and receives, as one registry (GAT1400.md §5.1, §7)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sharpeyes.api.viid.codes import SubscribeDetail


class Collection(enum.StrEnum):
    MOTOR_VEHICLE = "MotorVehicle"
    NON_MOTOR_VEHICLE = "NonMotorVehicle"
    PERSON = "Person"
    FACE = "Face"


@dataclass(frozen=True, slots=True)
class CollectionSpec:
    """Where a collection lives on the wire and how its envelope and ids are named."""

    collection: Collection
    path: str  # POST target, e.g. /VIID/MotorVehicles
    list_key: str  # MotorVehicleListObject
    item_key: str  # MotorVehicleObject
    id_field: str  # MotorVehicleID
    interface: str  # MEGVII template interface
    notification_key: str  # key of the list inside a SubscribeNotificationObject
    subscribe_detail: SubscribeDetail

    def envelope(self, items: list[dict[str, object]]) -> dict[str, object]:
        return {self.list_key: {self.item_key: items}}


COLLECTIONS: dict[Collection, CollectionSpec] = {
    Collection.MOTOR_VEHICLE: CollectionSpec(
        Collection.MOTOR_VEHICLE,
        "/VIID/MotorVehicles",
        "MotorVehicleListObject",
        "MotorVehicleObject",
        "MotorVehicleID",
        "motorvehicles",
        "MotorVehicleObjectList",
        SubscribeDetail.MOTOR_VEHICLES,
    ),
    Collection.NON_MOTOR_VEHICLE: CollectionSpec(
        Collection.NON_MOTOR_VEHICLE,
        "/VIID/NonMotorVehicles",
        "NonMotorVehicleListObject",
        "NonMotorVehicleObject",
        "NonMotorVehicleID",
        "nonmotorvehicles",
        "NonMotorVehicleObjectList",
        SubscribeDetail.NON_MOTOR_VEHICLES,
    ),
    Collection.PERSON: CollectionSpec(
        Collection.PERSON,
        "/VIID/Persons",
        "PersonListObject",
        "PersonObject",
        "PersonID",
        "persons",
        "PersonObjectList",
        SubscribeDetail.PERSONS,
    ),
    Collection.FACE: CollectionSpec(
        Collection.FACE,
        "/VIID/Faces",
        "FaceListObject",
        "FaceObject",
        "FaceID",
        "faces",
        "FaceObjectList",
        SubscribeDetail.FACES,
    ),
}

BY_PATH: dict[str, CollectionSpec] = {spec.path: spec for spec in COLLECTIONS.values()}
BY_DETAIL: dict[int, CollectionSpec] = {
    int(spec.subscribe_detail): spec for spec in COLLECTIONS.values()
}
