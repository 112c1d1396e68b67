"""
The ``akool`` connection form for Airflow 3.1, built from the provider info.

Airflow 3.2+ draws the form from ``conn-fields`` and ``ui-field-behaviour`` of
:func:`~airflow_provider_akool.get_provider_info.get_provider_info` and no longer calls the hook. Airflow 3.1
reads only the hook's ``get_connection_form_widgets()`` and ``get_ui_field_behaviour()``: its API server
(``GET /ui/connections/hook_meta``) calls them with stand-ins for WTForms, Flask-Babel and Flask-AppBuilder
and turns the fields back into a JSON schema. These functions translate the one declaration for that path,
so both Airflow lines show the same fields. The three libraries are imported only when Airflow calls, and
are no dependency: 3.1's API server supplies the stand-ins where they are not installed.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_akool.get_provider_info import get_provider_info


def _connection_type() -> dict[str, Any]:
    (connection_type,) = get_provider_info()["connection-types"]
    return dict(connection_type)


def form_widgets() -> dict[str, Any]:
    """Return the extra fields as WTForms fields, keyed by their name in the connection's extra."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, PasswordField, StringField
    from wtforms.validators import Optional, any_of

    widgets: dict[str, Any] = {}
    for name, spec in _connection_type()["conn-fields"].items():
        schema = spec.get("schema", {})
        types = schema.get("type", "string")
        types = [types] if isinstance(types, str) else types
        validators: list[Any] = [Optional()]
        if "enum" in schema:
            validators.append(any_of([value for value in schema["enum"] if value is not None]))
        default = schema.get("default")
        if schema.get("format") == "password":
            field_class, widget = PasswordField, BS3PasswordFieldWidget()
        elif "integer" in types:
            field_class, widget = IntegerField, BS3TextFieldWidget()
        else:
            # A "number" is a text field: 3.1 offers no decimal field, and the hook parses "2.5" as well.
            field_class, widget = StringField, BS3TextFieldWidget()
            default = None if default is None else str(default)
        widgets[name] = field_class(
            lazy_gettext(spec["label"]),
            validators=validators,
            description=spec.get("description", ""),
            default=default,
            widget=widget,
        )
    return widgets


def field_behaviour() -> dict[str, Any]:
    """Return the standard fields' behaviour in the form 3.1 expects (underscores, not dashes)."""
    behaviour = _connection_type()["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }
