"""Encrypted PHI fields and blind indexes.

Fields: django-encrypted-model-fields (Fernet; FIELD_ENCRYPTION_KEY is a list, the first key
encrypts, all decrypt), made strict: the library silently returns the ciphertext when no key
decrypts it (and date fields then fail on "invalid date format"); ours raise `DecryptionError`,
naming the field, never the value.

Blind indexes: an HMAC-SHA256, under BLIND_INDEX_KEY, of the normalized value and the
organization id, stored in an indexed column beside the ciphertext. Equal values in one
organization hash equally, so exact-match search is an index lookup; the same phone number in
two organizations hashes differently, so the indexes cannot be joined across tenants.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

import cryptography.fernet
import phonenumbers
from django.apps import apps
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from encrypted_model_fields import fields as encrypted_fields

REDACTED = "[REDACTED]"


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured key."""


def _crypter() -> cryptography.fernet.MultiFernet:
    # Looked up at call time: the library builds it once at import, tests may swap it.
    return encrypted_fields.CRYPTER


class _StrictDecryption:
    """Decrypt values coming from the database or fail loudly; leave other values alone."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        try:
            plaintext = _crypter().decrypt(value.encode("utf-8")).decode("utf-8")
        except cryptography.fernet.InvalidToken:
            raise DecryptionError(
                f"{self.model._meta.label}.{self.name} holds a value that no key in FIELD_ENCRYPTION_KEY "  # type: ignore[attr-defined]
                "decrypts (a removed or wrong key?). Run `manage.py check_encryption`."
            ) from None
        return self.to_python(plaintext)

    def to_python(self, value: Any) -> Any:
        # Values reaching to_python come from forms and code, in clear: skip the library's
        # lenient "decrypt if you can" step and use the plain Django field's conversion.
        return super(encrypted_fields.EncryptedMixin, self).to_python(value)  # type: ignore[misc]


class EncryptedCharField(_StrictDecryption, encrypted_fields.EncryptedCharField):
    pass


class EncryptedTextField(_StrictDecryption, encrypted_fields.EncryptedTextField):
    """Encrypted free text; give every one a `max_length` (tests/test_field_limits.py checks). It is
    checked by model validation and the form field, not the database: the column holds ciphertext
    (about 4/3 of the UTF-8 bytes plus Fernet's overhead), which no varchar could limit in
    characters. The library leaves it out of the migration state, so changing it needs no migration."""

    @functools.cached_property
    def validators(self) -> list[Any]:
        found = list(super().validators)
        if self.max_length is not None:
            found.append(MaxLengthValidator(self.max_length))
        return found


class EncryptedDateField(_StrictDecryption, encrypted_fields.EncryptedDateField):
    pass


class EncryptedEmailField(_StrictDecryption, encrypted_fields.EncryptedEmailField):
    pass


def is_encrypted(field: models.Field) -> bool:
    return isinstance(field, encrypted_fields.EncryptedMixin)


# ---------------------------------------------------------------------------------------------
# Normalizers: what counts as "the same value" for exact-match search.


def normalize_name(value: str) -> str:
    """Case-folded, accents stripped, inner whitespace collapsed: 'José  Núñez' -> 'jose nunez'."""
    decomposed = unicodedata.normalize("NFKD", str(value))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def normalize_phone(value: str, region: str | None = None) -> str:
    """E.164 ('+15550102030'); raises ValidationError for something that is not a phone number."""
    try:
        number = phonenumbers.parse(str(value), region or settings.PHONE_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValidationError("Enter a valid phone number.", code="invalid_phone") from None
    if not phonenumbers.is_possible_number(number):
        raise ValidationError("Enter a valid phone number.", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_phone(value: str) -> None:
    if value:
        normalize_phone(value)


def normalize_email(value: str) -> str:
    return str(value).strip().lower()


def normalize_date(value: date | str) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(str(value).strip()).isoformat()


def normalize_identifier(value: str) -> str:
    """Letters and digits only, upper-cased: 'ns-0001 ' and 'NS0001' are the same MRN."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", str(value)) if ch.isalnum()).upper()


def normalize_identifier_digits(value: str) -> str:
    """The number after an identifier's letters, without leading zeros: 'NS-000123' -> '123' ('' if none).

    Staff type the digits of an MRN and leave out its prefix and padding."""
    match = re.search(r"(\d+)$", normalize_identifier(value))
    if match is None:
        return ""
    return match.group(1).lstrip("0") or "0"


def phone_tail(value: str, length: int) -> str:
    """The last `length` digits of a phone number ('' when it has fewer): what staff type of a
    number they half remember, or of a local number without its area or country code."""
    digits = re.sub(r"\D", "", str(value))
    return digits[-length:] if len(digits) >= length else ""


NORMALIZERS: dict[str, Callable[[Any], str]] = {
    "name": normalize_name,
    "phone": normalize_phone,
    "email": normalize_email,
    "date": normalize_date,
    "identifier": normalize_identifier,
    "name_prefix": normalize_name,  # normalize_name is idempotent: a normalized prefix hashes the same
    "name_word": normalize_name,
    "name_pair": normalize_name,
    "identifier_digits": normalize_identifier_digits,
    "phone_last7": functools.partial(phone_tail, length=7),
    "phone_last10": functools.partial(phone_tail, length=10),
}


def blind_index(value: Any, kind: str, organization_id: int) -> str:
    """The keyed hash of a normalized value, scoped to one organization (hex, 64 characters)."""
    normalized = NORMALIZERS[kind](value)
    message = f"{kind}\x1f{organization_id}\x1f{normalized}".encode()
    return hmac.new(settings.BLIND_INDEX_KEY.encode(), message, hashlib.sha256).hexdigest()


class BlindIndexField(models.CharField):
    """An indexed HMAC of another (encrypted) field, computed on every save and bulk_create."""

    def __init__(self, *args: Any, source: str = "", kind: str = "name", **kwargs: Any) -> None:
        if kind not in NORMALIZERS:
            raise ValueError(f"Unknown blind index kind {kind!r}: choose from {sorted(NORMALIZERS)}")
        self.source = source
        self.kind = kind
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("db_index", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[Any, ...]:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        kwargs["kind"] = self.kind
        for key in ("max_length", "editable", "null", "blank", "db_index"):
            kwargs.pop(key, None)
        return name, path, args, kwargs

    def digest(self, value: Any, organization_id: int) -> str | None:
        if value is None or value == "":
            return None
        if NORMALIZERS[self.kind](value) == "":
            return None  # nothing to find it by (an MRN without digits, a short phone number)
        return blind_index(value, self.kind, organization_id)

    def pre_save(self, model_instance: models.Model, add: bool) -> str | None:
        value = self.digest(getattr(model_instance, self.source), model_instance.organization_id)  # type: ignore[attr-defined]
        setattr(model_instance, self.attname, value)
        return value


# ---------------------------------------------------------------------------------------------
# Name-prefix blind indexes: find a patient by the first letters of a name without decrypting.
#
# Per name, the HMACs (kind `name_prefix`, so never equal to a whole-value hash; organization id
# in every message) of the normalized name's prefixes of min..max letters, for the whole name and
# each of its words ("Mary Ann" is found by "mar", "mary a" and "ann"). Longer queries compare
# their max-length prefix. A 3-letter prefix is a small space: like every blind index these
# hashes are only as safe as BLIND_INDEX_KEY, and they are never shown or logged.

PREFIX_KIND = "name_prefix"

_WORD_SPLIT = re.compile(r"[^\w]+")


def name_prefixes(value: Any, min_length: int, max_length: int) -> set[str]:
    """The normalized prefixes that a name is findable by (whole name and each word)."""
    normalized = normalize_name(value or "")
    if not normalized:
        return set()
    words = [normalized, *(w for w in _WORD_SPLIT.split(normalized) if w)]
    prefixes = set()
    for word in words:
        for length in range(min_length, min(len(word), max_length) + 1):
            prefixes.add(word[:length])
    return prefixes


def prefix_digest(prefix: str, organization_id: int) -> str:
    return blind_index(prefix, PREFIX_KIND, organization_id)


class _DigestArrayField(ArrayField):
    """An indexed array of HMACs computed from other fields of the row, on every save and bulk_create.

    Subclasses say what the digests are (`digests`) and of which fields (`source_values`); the array
    itself is never edited and never migrated as anything but 64-character strings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["base_field"] = models.CharField(max_length=64)
        kwargs.setdefault("default", list)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[Any, ...]:
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("base_field", None)
        kwargs.pop("size", None)
        for key in ("default", "editable", "blank"):
            kwargs.pop(key, None)
        return name, path, args, kwargs

    def source_values(self, model_instance: models.Model) -> Any:
        raise NotImplementedError

    def digests(self, value: Any, organization_id: int | None) -> list[str]:
        raise NotImplementedError

    def refresh(self, model_instance: models.Model) -> list[str]:
        value = self.digests(self.source_values(model_instance), model_instance.organization_id)  # type: ignore[attr-defined]
        setattr(model_instance, self.attname, value)
        return value

    def pre_save(self, model_instance: models.Model, add: bool) -> list[str]:
        return self.refresh(model_instance)


class BlindPrefixIndexField(_DigestArrayField):
    """An indexed array of HMACs of a name's prefixes, computed on every save and bulk_create."""

    def __init__(self, *args: Any, source: str = "", min_length: int = 3, max_length: int = 8, **kwargs: Any) -> None:
        self.source = source
        self.min_length = min_length
        self.prefix_max_length = max_length
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[Any, ...]:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        kwargs["min_length"] = self.min_length
        kwargs["max_length"] = self.prefix_max_length
        return name, path, args, kwargs

    def source_values(self, model_instance: models.Model) -> Any:
        return getattr(model_instance, self.source)

    def digests(self, value: Any, organization_id: int | None) -> list[str]:
        if organization_id is None:
            return []
        prefixes = name_prefixes(value, self.min_length, self.prefix_max_length)
        return sorted(prefix_digest(p, organization_id) for p in prefixes)


# ---------------------------------------------------------------------------------------------
# Name search by words: "Angela Watson", "Watson, Angela", "Angela W", "angie wat".
#
# A query is split into words like the names are; every word must match some word of the given,
# family or preferred name, in any order. What a patient is findable by, each an HMAC (its kind in
# the message, so kinds never collide; organization id in every message):
# - `name_prefix`: the first 3 to 8 letters of every word (longer query words compare their first 8);
# - `name_word`: the whole word, for words longer than 8 letters (so "Christophe" is not also
#   every "Christopher");
# - `name_pair`: a word's first 8 letters with the first one or two letters of another word of the
#   name ("angela w", "watson an"): an initial is searchable only beside a whole word, never alone,
#   so no hash stands for "every name starting with W".
# All of them live in one array on the patient and, by a trigger, as rows of a lookup table that
# search reads by equality (leakproof under RLS). Nothing in clear, nothing decrypted to search.

NAME_PREFIX_MIN = 3
NAME_PREFIX_MAX = 8
NAME_INITIAL_MAX = 2
NAME_PAIR_WORDS = 6  # pairs among the first 6 words only: a name of many words stays a few dozen rows
WORD_KIND = "name_word"
PAIR_KIND = "name_pair"


def name_words(*values: Any) -> list[str]:
    """The normalized words of names (or of a query), in order, without repeats.

    'Núñez-García' -> ['nunez', 'garcia']."""
    words: list[str] = []
    for value in values:
        for word in _WORD_SPLIT.split(normalize_name(value or "")):
            if word and word not in words:
                words.append(word)
    return words


def name_search_terms(*values: Any) -> set[tuple[str, str]]:
    """(kind, normalized text) of every term a patient with these names is findable by."""
    words = name_words(*values)
    terms: set[tuple[str, str]] = set()
    for word in words:
        for length in range(NAME_PREFIX_MIN, min(len(word), NAME_PREFIX_MAX) + 1):
            terms.add((PREFIX_KIND, word[:length]))
        if len(word) > NAME_PREFIX_MAX:
            terms.add((WORD_KIND, word))
    paired = words[:NAME_PAIR_WORDS]
    for i, anchor in enumerate(paired):
        if len(anchor) < NAME_PREFIX_MIN:
            continue
        for j, other in enumerate(paired):
            if i != j:
                for length in range(1, min(len(other), NAME_INITIAL_MAX) + 1):
                    terms.add((PAIR_KIND, f"{anchor[:NAME_PREFIX_MAX]} {other[:length]}"))
    return terms


def name_term_digest(kind: str, text: str, organization_id: int) -> str:
    return blind_index(text, kind, organization_id)


def name_query_prefix_digest(word: str, organization_id: int) -> str:
    """What a query word of 3 letters or more looks up: its first 8 letters as a name prefix."""
    return prefix_digest(word[:NAME_PREFIX_MAX], organization_id)


def name_query_word_digest(word: str, organization_id: int) -> str:
    """A query word longer than 8 letters, as a whole word."""
    return name_term_digest(WORD_KIND, word, organization_id)


def name_query_pair_digest(anchor: str, initial: str, organization_id: int) -> str:
    """A query's initial (1-2 letters) beside one of its whole words."""
    return name_term_digest(PAIR_KIND, f"{anchor[:NAME_PREFIX_MAX]} {initial}", organization_id)


class BlindNameIndexField(_DigestArrayField):
    """The HMACs of every term a patient's names are findable by (see above), on every save and bulk_create."""

    def __init__(self, *args: Any, sources: Sequence[str] = (), **kwargs: Any) -> None:
        self.sources = tuple(sources)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[Any, ...]:
        name, path, args, kwargs = super().deconstruct()
        kwargs["sources"] = list(self.sources)
        return name, path, args, kwargs

    def source_values(self, model_instance: models.Model) -> Any:
        return [getattr(model_instance, source) for source in self.sources]

    def digests(self, values: Sequence[Any], organization_id: int | None) -> list[str]:
        if organization_id is None:
            return []
        return sorted({name_term_digest(kind, text, organization_id) for kind, text in name_search_terms(*values)})


def blind_index_field_for(model: type[models.Model], source: str, kind: str | None = None) -> BlindIndexField:
    """The blind index over `source` (of `kind`; without one, the first declared: the whole value's)."""
    for field in model._meta.get_fields():
        if isinstance(field, BlindIndexField) and field.source == source and kind in (None, field.kind):
            return field
    raise FieldDoesNotExist(f"{model._meta.label} has no blind index over {source!r}.")


def is_blind_index(field: models.Field) -> bool:
    return isinstance(field, BlindIndexField | BlindPrefixIndexField | BlindNameIndexField)


def protected_field_names(model: type[models.Model]) -> list[str]:
    """Fields whose values must never appear in clear outside the row: ciphertexts and their hashes."""
    return [f.name for f in model._meta.concrete_fields if is_encrypted(f) or is_blind_index(f)]


def _has_encrypted_field(model: type[models.Model]) -> bool:
    return any(is_encrypted(f) for f in model._meta.concrete_fields)


def _is_tenant_model(model: type[models.Model]) -> bool:
    return any(f.name == "organization" for f in model._meta.concrete_fields)


def phi_models() -> Iterator[type[models.Model]]:
    """Every installed tenant model that stores at least one encrypted field."""
    for model in apps.get_models():
        if _has_encrypted_field(model) and _is_tenant_model(model):
            yield model


def secret_models() -> Iterator[type[models.Model]]:
    """Platform models (no organization) with encrypted fields: credentials such as TOTP keys, not
    PHI, but under the same keys (rotated by the same sweep)."""
    for model in apps.get_models():
        if _has_encrypted_field(model) and not _is_tenant_model(model):
            yield model


@functools.cache
def _phi_model_set() -> frozenset[type[models.Model]]:
    return frozenset(phi_models())


def is_phi_model(model: type[models.Model]) -> bool:
    return model in _phi_model_set()


def redact(value: Any) -> str:
    """django-auditlog mask callable: nothing of the value survives (its default keeps half)."""
    return REDACTED


def reload_keys() -> None:
    """Rebuild the library's crypter from settings.FIELD_ENCRYPTION_KEY (it is built once at import)."""
    encrypted_fields.CRYPTER = encrypted_fields.get_crypter()


def encrypt_bytes(data: bytes) -> bytes:
    """Encrypt a file's bytes under the first key of FIELD_ENCRYPTION_KEY (a Fernet token)."""
    return _crypter().encrypt(data)


def decrypt_bytes(token: bytes, *, label: str = "a file") -> bytes:
    """Decrypt what `encrypt_bytes` made, with any configured key; DecryptionError when none fits."""
    try:
        return _crypter().decrypt(bytes(token))
    except cryptography.fernet.InvalidToken:
        raise DecryptionError(f"{label} holds bytes that no key in FIELD_ENCRYPTION_KEY decrypts.") from None


def primary_fernet() -> cryptography.fernet.Fernet:
    """The key that encrypts (the first of FIELD_ENCRYPTION_KEY)."""
    keys = settings.FIELD_ENCRYPTION_KEY
    return cryptography.fernet.Fernet(keys[0] if isinstance(keys, list | tuple) else keys)
