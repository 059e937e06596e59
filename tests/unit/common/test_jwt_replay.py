"""Single-use JWT ids in Redis: the first use is recorded, a replay refused, other issuers independent."""

from __future__ import annotations

import redis

from hilum.common.jwt_replay import spend_jti


def test_a_jti_is_spent_once_per_issuer_until_its_token_expires(redis_client: redis.Redis) -> None:
    assert spend_jti(redis_client, "test:jti:", "ehr-a", "j1", expires_at=1060.0, now=1000.0, clock_skew_s=30)
    assert not spend_jti(redis_client, "test:jti:", "ehr-a", "j1", expires_at=1060.0, now=1000.0, clock_skew_s=30)
    assert spend_jti(redis_client, "test:jti:", "ehr-b", "j1", expires_at=1060.0, now=1000.0, clock_skew_s=30)
    keys = list(redis_client.scan_iter("test:jti:*"))
    assert len(keys) == 2
    for key in keys:
        assert b"ehr" not in key and b"j1" not in key  # a hash, never the issuer or the jti
        assert 85 < redis_client.ttl(key) <= 90  # 60 s to expiry plus 30 s skew


def test_an_expired_token_is_still_kept_for_at_least_a_second(redis_client: redis.Redis) -> None:
    assert spend_jti(redis_client, "test:jti:", "ehr-a", "old", expires_at=900.0, now=1000.0, clock_skew_s=0)
    assert not spend_jti(redis_client, "test:jti:", "ehr-a", "old", expires_at=900.0, now=1000.0, clock_skew_s=0)
