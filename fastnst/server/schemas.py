"""Pydantic schemas of the HTTP API: what the OpenAPI document at /docs shows and what responses contain."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OutputFormatName = Literal["jpeg", "png", "webp"]


class ErrorBody(BaseModel):
    """Every error response: a stable machine-readable code plus one human-readable line."""

    error: str = Field(description="short code, e.g. not_found, payload_too_large, overloaded",
                       examples=["not_found"])
    detail: str = Field(description="one line saying what is wrong and what to do",
                        examples=["unknown model 'x'; available: starry_night"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    models: list[str] = Field(description="names of the models that are loaded and warm")
    failed: dict[str, str] = Field(default_factory=dict, description="models that could not be loaded (damaged, "
                                   "unreadable), and why")
    cluster: dict[str, Any] | None = Field(None, description="with Ray Serve replicas (`serve --ray`): the "
                                           "deployment's status and how many replicas are in each state")


class StyleInfo(BaseModel):
    name: str = Field(description="style name from the model's metadata")
    image: str | None = Field(None, description="file name of the painting the style was learned from")


class BackendInfo(BaseModel):
    name: str = Field(description="runtime running the model, e.g. torch")
    device: str
    precision: str


class ModelCard(BaseModel):
    name: str = Field(description="the value to pass as `model`")
    style: StyleInfo
    styles: list[StyleInfo] = Field(description="the styles the model holds: one, or several for a multi-style "
                                                "model (choose with the `style` or `mix` options)")
    backends: list[BackendInfo] = Field(description="backends serving this model")
    thumbnail: str = Field(description="URL of a small preview of the style")
    metadata: dict[str, Any] = Field(description="training facts from model.json (architecture, steps, losses, "
                                                 "hardware, weights' SHA-256)")


class ModelList(BaseModel):
    models: list[ModelCard]


class StylizeOptions(BaseModel):
    """Options of POST /v1/stylize (query parameters; multipart form fields of the same names take precedence)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(None, min_length=1, max_length=200,
                              description="model name from GET /v1/models; optional when only one is served")
    strength: float = Field(1.0, ge=0.0, le=1.0, description="0 returns the photo, 1 the full style")
    preserve_color: bool = Field(False, description="keep the photo's colours, take only the style's luminance")
    max_side: int | None = Field(None, ge=16, description="downscale so the longer side is at most this many px "
                                                         "(default and upper limit set by the server)")
    format: OutputFormatName | None = Field(None, description="output format (default: png for images with "
                                                             "transparency, else jpeg)")
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality")
    style: str | None = Field(None, min_length=1, max_length=200,
                              description="multi-style models: the style to apply (default: the model's first; "
                                          "GET /v1/models lists each model's styles)")
    mix: str | None = Field(None, min_length=3, max_length=2000,
                            description="multi-style models: a blend of styles, NAME=WEIGHT,NAME=WEIGHT (e.g. "
                                        "starry_night=0.7,great_wave=0.3; weights are normalised)")


OPTION_NAMES: tuple[str, ...] = tuple(StylizeOptions.model_fields)
"""Stylize options; each may be a query parameter or, in a multipart upload, a form field."""


def option_schemas(max_side_limit: int) -> dict[str, dict[str, Any]]:
    """JSON schemas of the options for the multipart body, from :class:`StylizeOptions` (one source of truth).

    Form fields cannot be null, so the ``None`` branch of optional fields is dropped; ``max_side`` gets the
    running server's limit, which the static model cannot know.
    """
    properties = StylizeOptions.model_json_schema()["properties"]
    out = {}
    for name, schema in properties.items():
        branches = [b for b in schema.get("anyOf", [schema]) if b.get("type") != "null"]
        merged = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
        merged.update(branches[0])
        out[name] = merged
    out["max_side"]["maximum"] = max_side_limit
    return out
