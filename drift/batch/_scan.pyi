from typing import Sequence

_Text = tuple[bytes, bytes, bytes, bytes, bytes]
_Object = tuple[bytes, bytes, bytes, list[_Text]]

class Scanner:
    def __init__(self, envelope: Sequence[str], segment: Sequence[str], feature_floats: Sequence[str],
                 feature_categories: Sequence[str], prediction_floats: Sequence[str],
                 prediction_categories: Sequence[str]) -> None: ...
    def scan(self, messages: Sequence[bytes | None], /) -> tuple[
        list[_Text], list[_Text], _Text, bytes | None, bytes | None, _Object, _Object] | None: ...
