"""How two AE titles compare, for the registry (clashes) and the receiver (routing) alike."""


def ae_title_key(value: str) -> str:
    """The form in which AE titles are compared: without the leading and trailing spaces
    DICOM does not count, and without case. The standard makes AE titles case-sensitive,
    but many PACS upper-case what they are given, so ``study1`` and ``STUDY1`` are one."""
    return value.strip(" ").upper()
