"""Pydantic models of the GA/T 1400 JSON bodies we send and receive (GAT1400.md §2–§7).

Field names are the wire names (PascalCase, exactly as in the standard). Models allow extra keys
so a receiver can parse what real platforms send and a sender can add a customer-agreed
extension field; conformance of a payload is judged by :mod:`api.viid.conformance`, not here.
Serialise with :func:`dump` (drops ``None`` fields, keeps declared order).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sharpeyes.api.viid.codes import StatusCode


class ViidModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a model without ``None`` fields."""
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


# -- system ----------------------------------------------------------------------------------


class DeviceIdBody(ViidModel):
    DeviceID: str


class RegisterRequest(ViidModel):
    RegisterObject: DeviceIdBody


class KeepaliveRequest(ViidModel):
    KeepaliveObject: DeviceIdBody


class UnRegisterRequest(ViidModel):
    """Standard spelling; MEGVII uses ``UnregisterObject`` (see ViidPlatform.unregister_key)."""

    UnRegisterObject: DeviceIdBody | None = None
    UnregisterObject: DeviceIdBody | None = None


class SystemTime(ViidModel):
    VIIDServerID: str
    TimeMode: str = "1"
    LocalTime: str
    TimeZone: str = "UTC/GMT+08:00"


class SystemTimeResponse(ViidModel):
    SystemTimeObject: SystemTime


class ResponseStatus(ViidModel):
    RequestURL: str | None = None
    StatusCode: int | str = StatusCode.OK
    StatusString: str | None = None
    Id: str | None = None
    LocalTime: str | None = None

    @property
    def code(self) -> int:
        """StatusCode as an int whichever type the platform sent (§3); unparsable → 1."""
        try:
            return int(self.StatusCode)
        except (TypeError, ValueError):
            return int(StatusCode.OTHER_ERROR)


class ResponseStatusEnvelope(ViidModel):
    ResponseStatusObject: ResponseStatus


class ResponseStatusList(ViidModel):
    ResponseStatusObject: list[ResponseStatus] = Field(default_factory=list)

    @field_validator("ResponseStatusObject", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, dict) else v


class ResponseStatusListEnvelope(ViidModel):
    ResponseStatusListObject: ResponseStatusList


# -- images ----------------------------------------------------------------------------------


class FeatureInfo(ViidModel):
    Vendor: str
    AlgorithmVersion: str
    FeatureData: str


class SubImageInfo(ViidModel):
    ImageID: str | None = None
    EventSort: int | None = None
    DeviceID: str | None = None
    StoragePath: str | None = None
    Type: str
    FileFormat: str | None = "Jpeg"
    ShotTime: str | None = None
    Width: int | None = None
    Height: int | None = None
    Data: str | None = None
    FileSize: int | None = None


class SubImages(ViidModel):
    SubImageInfoObject: list[SubImageInfo] = Field(default_factory=list)


class ImageInfo(ViidModel):
    ImageID: str
    InfoKind: int
    ImageSource: str
    DeviceID: str
    FileFormat: str = "Jpeg"
    ShotTime: str
    Title: str
    ContentDescription: str
    ShotPlaceFullAdress: str
    SecurityLevel: str = "5"
    Width: int
    Height: int
    StoragePath: str | None = None
    EventSort: int | None = None


# -- semantic objects ------------------------------------------------------------------------


class _Located(ViidModel):
    InfoKind: int
    SourceID: str
    DeviceID: str | None = None
    LeftTopX: int | None = None
    LeftTopY: int | None = None
    RightBtmX: int | None = None
    RightBtmY: int | None = None
    SubImageList: SubImages = Field(default_factory=SubImages)


class MotorVehicle(_Located):
    MotorVehicleID: str
    TollgateID: str | None = None
    StorageUrl1: str | None = None
    StorageUrl2: str | None = None
    StorageUrl3: str | None = None
    StorageUrl4: str | None = None
    StorageUrl5: str | None = None
    MarkTime: str | None = None
    AppearTime: str | None = None
    DisappearTime: str | None = None
    PassTime: str | None = None
    LaneNo: int | None = None
    HasPlate: str | bool | None = None
    PlateClass: str | None = None
    PlateColor: str | None = None
    PlateNo: str | None = None
    PlateReliability: str | None = None
    Speed: float | None = None
    Direction: str | None = None
    VehicleClass: str | None = None
    VehicleColor: str | None = None
    NameOfPassedRoad: str | None = None


class NonMotorVehicle(_Located):
    NonMotorVehicleID: str
    MarkTime: str | None = None
    AppearTime: str | None = None
    DisappearTime: str | None = None
    HasPlate: str | bool | None = None
    PlateClass: str | None = None
    PlateColor: str | None = None
    PlateNo: str | None = None
    Speed: float | None = None
    VehicleType: str | None = None
    VehicleColor: str | None = None


class Person(_Located):
    PersonID: str
    LocationMarkTime: str | None = None
    PersonAppearTime: str | None = None
    PersonDisAppearTime: str | None = None
    IsDriver: int | None = None
    IsForeigner: int | None = None
    IsSuspectedTerrorist: int | None = None
    IsDetainees: int | None = None
    IsVictim: int | None = None
    IsSuspiciousPerson: int | None = None
    CoatColor: str | None = None
    TrousersColor: str | None = None


class Face(_Located):
    FaceID: str
    LocationMarkTime: str | None = None
    FaceAppearTime: str | None = None
    FaceDisAppearTime: str | None = None
    ShotTime: str | None = None
    IsDetainees: int | None = None


class MotorVehicleList(ViidModel):
    MotorVehicleObject: list[MotorVehicle] = Field(default_factory=list)


class NonMotorVehicleList(ViidModel):
    NonMotorVehicleObject: list[NonMotorVehicle] = Field(default_factory=list)


class PersonList(ViidModel):
    PersonObject: list[Person] = Field(default_factory=list)


class FaceList(ViidModel):
    FaceObject: list[Face] = Field(default_factory=list)


# -- subscriptions ---------------------------------------------------------------------------


class Subscribe(ViidModel):
    SubscribeID: str
    Title: str | None = None
    SubscribeDetail: str | None = None
    ResourceClass: int | None = None
    ResourceURI: str | None = None
    ApplicantName: str | None = None
    ApplicantOrg: str | None = None
    BeginTime: str | None = None
    EndTime: str | None = None
    ReceiveAddr: str | None = None
    ReportInterval: int | None = None
    Reason: str | None = None
    OperateType: int = 0
    SubscribeStatus: int | None = None
    SubscribeCancelOrg: str | None = None
    SubscribeCancelPerson: str | None = None
    CancelTime: str | None = None
    CancelReason: str | None = None
    ResultImageDeclare: str | None = None
    ResultFeatureDeclare: int | None = None


class SubscribeList(ViidModel):
    SubscribeObject: list[Subscribe] = Field(default_factory=list)

    @field_validator("SubscribeObject", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, dict) else v


class SubscribeListEnvelope(ViidModel):
    SubscribeListObject: SubscribeList


class SubscribeNotification(ViidModel):
    NotificationID: str
    SubscribeID: str
    Title: str | None = None
    TriggerTime: str | None = None
    InfoIDs: str | None = None
    ExecuteOperation: int | None = None
    MotorVehicleObjectList: MotorVehicleList | None = None
    NonMotorVehicleObjectList: NonMotorVehicleList | None = None
    PersonObjectList: PersonList | None = None
    FaceObjectList: FaceList | None = None


class SubscribeNotificationList(ViidModel):
    SubscribeNotificationObject: list[SubscribeNotification] = Field(default_factory=list)


class SubscribeNotificationEnvelope(ViidModel):
    SubscribeNotificationListObject: SubscribeNotificationList
