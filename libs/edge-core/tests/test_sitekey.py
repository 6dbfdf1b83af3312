import pytest

from edge_core.settings import EdgeSettings
from edge_core.sitekey import PREFIX, SiteKey, SiteKeyError


def test_key_file_is_created_owner_only_once(tmp_path):
    path = tmp_path / "var" / "site.key"
    key = SiteKey.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    sealed = key.encrypt("s3cr3t")
    assert sealed.startswith(PREFIX) and "s3cr3t" not in sealed
    # Later starts (or another process) read the same key; nothing else is left behind.
    assert SiteKey.load_or_create(path).decrypt(sealed) == "s3cr3t"
    assert [p.name for p in path.parent.iterdir()] == ["site.key"]


def test_encrypt_leaves_sealed_values_and_decrypt_plain_ones():
    key = SiteKey.generate()
    sealed = key.encrypt("s3cr3t")
    assert key.encrypt(sealed) == sealed  # a kept credential is not sealed twice
    assert key.decrypt("plain-from-before") == "plain-from-before"
    with pytest.raises(SiteKeyError, match="another"):
        SiteKey.generate().decrypt(sealed)


def test_missing_or_bad_key_file(tmp_path):
    with pytest.raises(SiteKeyError, match="no site key"):
        SiteKey.load(tmp_path / "site.key")
    (tmp_path / "site.key").write_text("not a key")
    with pytest.raises(SiteKeyError, match="does not hold"):
        SiteKey.load(tmp_path / "site.key")


def test_key_from_the_setting_or_the_file(tmp_path):
    settings = EdgeSettings(data_dir=tmp_path)
    with pytest.raises(SiteKeyError, match="no site key"):
        SiteKey.of(settings)  # the uploader never makes one
    sealed = SiteKey.of(settings, create=True).encrypt("s3cr3t")  # the registry does
    assert SiteKey.of(settings).decrypt(sealed) == "s3cr3t"

    value = (tmp_path / "site.key").read_text()
    elsewhere = EdgeSettings(data_dir=tmp_path / "other", site_key=value)  # type: ignore[arg-type]
    assert SiteKey.of(elsewhere, create=True).decrypt(sealed) == "s3cr3t"
    assert not (tmp_path / "other").exists()
    with pytest.raises(SiteKeyError, match="EDGE_SITE_KEY is not a site key"):
        SiteKey.of(EdgeSettings(site_key="change-me"))  # type: ignore[arg-type]
