"""Discord's payload limits, enforced so that bugs surface in the sandbox, not in production.

Errors use Discord's "Invalid Form Body" (code 50035) nesting, which discord.py
flattens into the HTTPException text (e.g. "In embeds.0.title: Must be 256 or
fewer in length.").
"""

from __future__ import annotations

import re
from typing import Any

from .models import COMPONENTS_V2

_NAME_RE = re.compile(r"^[-_\w]{1,32}$")

MAX_CONTENT = 2000
MAX_EMBEDS = 10
EMBED_TOTAL = 6000


class FormErrors:
    """Collects errors at nested paths and renders Discord's error tree."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.count = 0

    def add(self, path: tuple[Any, ...], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
        self.count += 1

    def max_len(self, path: tuple[Any, ...], value: Any, limit: int) -> None:
        if isinstance(value, str) and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def required(self, path: tuple[Any, ...], value: Any) -> bool:
        if value is None or value == "":
            self.add(path, "BASE_TYPE_REQUIRED", "This field is required")
            return False
        return True

    def __bool__(self) -> bool:
        return self.count > 0

    def body(self) -> dict[str, Any]:
        return {"code": 50035, "message": "Invalid Form Body", "errors": self.tree}


def embed_length(embed: dict[str, Any]) -> int:
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "")
    total += len((embed.get("author") or {}).get("name") or "")
    for f in embed.get("fields") or []:
        total += len(f.get("name") or "") + len(f.get("value") or "")
    return total


def validate_message(payload: dict[str, Any], errors: FormErrors, *, prefix: tuple[Any, ...] = ()) -> None:
    errors.max_len(prefix + ("content",), payload.get("content"), MAX_CONTENT)
    embeds = payload.get("embeds")
    if embeds is not None:
        if not isinstance(embeds, list):
            errors.add(prefix + ("embeds",), "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        else:
            if len(embeds) > MAX_EMBEDS:
                errors.add(prefix + ("embeds",), "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
            total = 0
            for i, embed in enumerate(embeds):
                path = prefix + ("embeds", i)
                errors.max_len(path + ("title",), embed.get("title"), 256)
                errors.max_len(path + ("description",), embed.get("description"), 4096)
                errors.max_len(path + ("footer", "text"), (embed.get("footer") or {}).get("text"), 2048)
                errors.max_len(path + ("author", "name"), (embed.get("author") or {}).get("name"), 256)
                fields = embed.get("fields") or []
                if len(fields) > 25:
                    errors.add(path + ("fields",), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
                for j, f in enumerate(fields):
                    if errors.required(path + ("fields", j, "name"), f.get("name")):
                        errors.max_len(path + ("fields", j, "name"), f.get("name"), 256)
                    if errors.required(path + ("fields", j, "value"), f.get("value")):
                        errors.max_len(path + ("fields", j, "value"), f.get("value"), 1024)
                total += embed_length(embed)
            if total > EMBED_TOTAL:
                errors.add(prefix + ("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    components = payload.get("components")
    if components is not None:
        validate_components(
            components, errors, prefix + ("components",), v2=bool((payload.get("flags") or 0) & COMPONENTS_V2)
        )


def validate_components(components: Any, errors: FormErrors, path: tuple[Any, ...], *, v2: bool) -> None:
    if not isinstance(components, list):
        errors.add(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        return
    if not v2 and len(components) > 5:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for i, row in enumerate(components):
        if v2:
            continue  # components v2 layouts are accepted as sent; only classic rows are checked
        if row.get("type") != 1:
            errors.add(path + (i, "type"), "UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (1,).")
            continue
        children = row.get("components") or []
        if not children:
            errors.add(path + (i, "components"), "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.")
        selects = [c for c in children if c.get("type") in (3, 5, 6, 7, 8)]
        if len(children) > 5 or (selects and len(children) > 1):
            errors.add(
                path + (i, "components"),
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            )
        for j, comp in enumerate(children):
            cpath = path + (i, "components", j)
            errors.max_len(cpath + ("label",), comp.get("label"), 80)
            custom_id = comp.get("custom_id")
            if comp.get("type") == 2 and comp.get("style") == 5:
                errors.required(cpath + ("url",), comp.get("url"))
            elif comp.get("type") == 2 and comp.get("style") == 6:
                errors.required(cpath + ("sku_id",), comp.get("sku_id"))
            elif errors.required(cpath + ("custom_id",), custom_id):
                errors.max_len(cpath + ("custom_id",), custom_id, 100)
                if custom_id in seen:
                    errors.add(
                        cpath + ("custom_id",),
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                seen.add(custom_id)


def is_empty_message(payload: dict[str, Any], has_files: bool) -> bool:
    return not (
        payload.get("content")
        or payload.get("embeds")
        or payload.get("components")
        or payload.get("sticker_ids")
        or payload.get("poll")
        or payload.get("attachments")
        or has_files
    )


def validate_choices(choices: Any, errors: FormErrors, path: tuple[Any, ...]) -> None:
    if not isinstance(choices, list):
        errors.add(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        return
    if len(choices) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for i, choice in enumerate(choices):
        if errors.required(path + (i, "name"), choice.get("name")):
            errors.max_len(path + (i, "name"), choice.get("name"), 100)
        if "value" not in choice:
            errors.add(path + (i, "value"), "BASE_TYPE_REQUIRED", "This field is required")
        errors.max_len(path + (i, "value"), choice.get("value"), 100)


def validate_modal(data: dict[str, Any], errors: FormErrors) -> None:
    if errors.required(("data", "title"), data.get("title")):
        errors.max_len(("data", "title"), data.get("title"), 45)
    if errors.required(("data", "custom_id"), data.get("custom_id")):
        errors.max_len(("data", "custom_id"), data.get("custom_id"), 100)
    comps = data.get("components") or []
    if not 1 <= len(comps) <= 5:
        errors.add(("data", "components"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")


def validate_command(cmd: dict[str, Any], errors: FormErrors, path: tuple[Any, ...]) -> None:
    ctype = cmd.get("type", 1)
    name = cmd.get("name") or ""
    if ctype == 1:
        if not _NAME_RE.match(name) or name != name.lower():
            errors.add(path + ("name",), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        desc = cmd.get("description") or ""
        if not 1 <= len(desc) <= 100:
            errors.add(path + ("description",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    elif not 1 <= len(name) <= 32:
        errors.add(path + ("name",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
    _validate_options(cmd.get("options") or [], errors, path + ("options",), depth=0)


def _validate_options(options: list[dict[str, Any]], errors: FormErrors, path: tuple[Any, ...], depth: int) -> None:
    if len(options) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for i, opt in enumerate(options):
        opath = path + (i,)
        name = opt.get("name") or ""
        if not _NAME_RE.match(name) or name != name.lower():
            errors.add(opath + ("name",), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if name in names:
            errors.add(
                opath + ("name",), "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option names must be unique"
            )
        names.add(name)
        desc = opt.get("description") or ""
        if not 1 <= len(desc) <= 100:
            errors.add(opath + ("description",), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        otype = opt.get("type")
        if otype in (1, 2):
            if depth >= 2 or (otype == 2 and depth >= 1):
                errors.add(
                    opath + ("type",),
                    "APPLICATION_COMMAND_SUBCOMMAND_TOO_DEEP",
                    "Sub-command groups cannot be nested this deep",
                )
            _validate_options(opt.get("options") or [], errors, opath + ("options",), depth + 1)
            continue
        if opt.get("required"):
            if seen_optional:
                errors.add(
                    opath + ("required",),
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        if opt.get("choices"):
            if opt.get("autocomplete"):
                errors.add(
                    opath + ("autocomplete",),
                    "AUTOCOMPLETE_AND_CHOICES",
                    "Autocomplete and choices are mutually exclusive",
                )
            validate_choices(opt["choices"], errors, opath + ("choices",))


def first_error(errors: FormErrors) -> str | None:
    def walk(node: dict[str, Any], prefix: str) -> str | None:
        for key, value in node.items():
            if key == "_errors":
                return f"{prefix}: {value[0]['message']}" if prefix else value[0]["message"]
            found = walk(value, f"{prefix}.{key}" if prefix else key)
            if found:
                return found
        return None

    return walk(errors.tree, "")
