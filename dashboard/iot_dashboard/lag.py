"""How far `load` is behind: each partition's stored offset against its end, asked of
the broker with the Kafka settings `load` reads."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import pandas as pd

from iot_dashboard.queries import stored_offsets
from iot_dashboard.sources import Source

# The Kafka settings `load` reads, each under its two names, and librdkafka's
# property for it.
KAFKA_ENV = {
    "bootstrap.servers": (
        "KAFKA_BOOTSTRAP_SERVERS",
        "SOURCES__KAFKA__CREDENTIALS__BOOTSTRAP_SERVERS",
    ),
    "security.protocol": (
        "KAFKA_SECURITY_PROTOCOL",
        "SOURCES__KAFKA__CREDENTIALS__SECURITY_PROTOCOL",
    ),
    "sasl.mechanisms": ("KAFKA_SASL_MECHANISMS", "SOURCES__KAFKA__CREDENTIALS__SASL_MECHANISMS"),
    "sasl.username": ("KAFKA_SASL_USERNAME", "SOURCES__KAFKA__CREDENTIALS__SASL_USERNAME"),
    "sasl.password": ("KAFKA_SASL_PASSWORD", "SOURCES__KAFKA__CREDENTIALS__SASL_PASSWORD"),
}


# The topics `load` reads, by the variables and defaults it reads them from.
TOPICS_ENV = {
    "VEHICLE_TOPIC": "vehicle_data",
    "GPS_TOPIC": "gps_data",
    "TRAFFIC_TOPIC": "traffic_data",
    "WEATHER_TOPIC": "weather_data",
    "EMERGENCY_TOPIC": "emergency_data",
}


def kafka_topics(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    return tuple(env.get(name) or default for name, default in TOPICS_ENV.items())


def kafka_settings(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """librdkafka's settings from the variables `load` reads; load's default broker."""
    settings = {"bootstrap.servers": "127.0.0.1:9092"}
    for key, names in KAFKA_ENV.items():
        value = next((env[n] for n in names if env.get(n)), None)
        if value:
            settings[key] = value
    return settings


class NoBroker(Exception):
    """No broker answered: the lag cannot be shown (the rest of the page can)."""


# The last time no broker answered at given settings, and what was said: the page
# does not wait for it again at every refresh, only once this long has passed.
BROKER_PAUSE_S = 60.0
FAILED_BROKERS: dict[tuple, tuple[float, str]] = {}


def partition_lag(
    source: Source, kafka: tuple, topics: tuple[str, ...], timeout_s: float = 3.0
) -> pd.DataFrame:
    """Every partition of `topics` (those that exist) and of the topics the dataset
    has offsets for: the next offset stored, the end of the partition as the
    broker `kafka` (librdkafka settings, as pairs) reports it, and the lag between
    them, the messages `load` has yet to read. A partition with nothing stored
    yet lags by all it holds."""
    try:
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    except ImportError as e:  # Streamlit in Snowflake offers no Kafka client
        raise NoBroker("confluent-kafka, which asks the broker, is not installed here") from e
    failed_at, said = FAILED_BROKERS.get(kafka, (float("-inf"), ""))
    if time.monotonic() - failed_at < BROKER_PAUSE_S:
        raise NoBroker(f"{said}; asked again within a minute")

    stored = stored_offsets(source)
    # No group is joined and nothing is committed: the id only satisfies the client.
    # librdkafka's own log is off: a broker that does not answer is said on the page.
    settings = {
        **dict(kafka),
        "group.id": "iot-dashboard",
        "enable.auto.commit": False,
        "log_level": 0,
    }
    consumer = Consumer(settings)
    rows = []
    try:
        for topic in sorted(set(stored["topic"]) | set(topics)):
            found = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
            if found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue  # not created yet: nothing to read
            for partition in sorted(found.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s
                )
                rows.append((topic, partition, low, high))
    except KafkaException as e:
        said = (
            f"no Kafka broker answered at {settings['bootstrap.servers']} within "
            f"{timeout_s:.0f} s ({e.args[0].str()}): set KAFKA_BOOTSTRAP_SERVERS (and the "
            "credentials `load` uses) to see the lag per partition"
        )
        FAILED_BROKERS[kafka] = (time.monotonic(), said)
        raise NoBroker(said) from e
    finally:
        consumer.close()
    ends = pd.DataFrame(rows, columns=["topic", "partition", "start_offset", "end_offset"])
    FAILED_BROKERS.pop(kafka, None)
    frame = ends.merge(stored, on=["topic", "partition"], how="left")
    behind = frame["next_offset"].fillna(frame["start_offset"]).clip(lower=frame["start_offset"])
    frame["lag"] = (frame["end_offset"] - behind).clip(lower=0).astype("int64")
    return frame[["topic", "partition", "next_offset", "end_offset", "lag", "updated_at"]]
