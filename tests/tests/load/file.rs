//! The DuckDB file: held by another program, read by DuckDB 1.4, written by an earlier loader, not creatable; `--show-trips` on it.

use super::*;

/// The trips are dbt's model: on a file dbt has not built, `--show-trips` says
/// how to build it, loads nothing, and exits 4. (The report itself is tested
/// where dbt runs: analytics/tests/test_pipeline.py.)
#[test]
fn show_trips_on_a_file_dbt_has_not_built_says_how_to_build_it() {
    let f = Fixture::new();
    f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Leipzig",
        "--vehicles",
        "1",
        "--max-events",
        "50",
    ]);
    assert_success(&f.load(&[]));
    let before = f.rows();
    let output = f.load(&["--show-trips"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("has no table iot_stream_analytics.trips")
            && stderr.contains("scripts/dbt.sh build"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(f.rows(), before);
}

#[test]
fn a_locked_file_exits_75_and_nothing_is_lost() {
    let f = Fixture::new();
    let first = f.one_vehicle(200);
    assert_success(&f.load(&[]));
    let second = f.one_vehicle(300);

    // Another process holds the file, as DBeaver does while connected: writing, or
    // only reading (a read-only open shares the file with readers, not a writer).
    for mode in [duckdb::AccessMode::ReadWrite, duckdb::AccessMode::ReadOnly] {
        let config = duckdb::Config::default().access_mode(mode).unwrap();
        let holder = duckdb::Connection::open_with_flags(&f.db, config).unwrap();
        let started = Instant::now();
        let output = f.load(&["--lock-timeout", "2s"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(75), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(60));
        assert!(
            stderr.contains("in use by another program") && stderr.contains("PID"),
            "{stderr}"
        );
        drop(holder);
    }

    assert_success(&f.load(&[]));
    assert_eq!(f.rows() as u64, second);
    assert!(second > first);
    assert_each_offset_once(&f.db);
}

#[test]
fn the_file_opens_in_duckdb_1_4() {
    let f = Fixture::new();
    f.simulate(&[
        "--from",
        "Potsdam",
        "--to",
        "Berlin",
        "--vehicles",
        "2",
        "--max-events",
        "500",
    ]);
    assert_success(&f.load(&[]));
    let rows = f.rows();

    assert_eq!(read_with_duckdb_1_4(&f.db), (rows, 2));
}

/// (event rows, trips) of a file, as DuckDB 1.4's Python package reads them: the
/// DuckDB generation in current DBeaver drivers.
fn read_with_duckdb_1_4(db: &Path) -> (i64, i64) {
    let script = "import sys, duckdb\n\
                  assert duckdb.__version__.startswith('1.4'), duckdb.__version__\n\
                  c = duckdb.connect(sys.argv[1], read_only=True)\n\
                  n = sum(c.sql(f'SELECT count(*) FROM iot_stream.{t}').fetchone()[0] for t in sys.argv[2:])\n\
                  trips = c.sql('SELECT count(DISTINCT trip_id) FROM iot_stream.vehicle_data').fetchone()[0]\n\
                  print(n, trips)\n";
    let tables: Vec<&str> = EventKind::ALL.iter().map(|k| k.default_topic()).collect();
    let python = std::env::var("IOT_TEST_DUCKDB_PYTHON").unwrap_or_else(|_| {
        panic!(
            "this test needs a Python with duckdb==1.4.4: run the suite with scripts/test.sh, \
             which makes one, or set IOT_TEST_DUCKDB_PYTHON to its interpreter"
        )
    });
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(db)
        .args(&tables)
        .output()
        .unwrap_or_else(|e| panic!("{python} does not run: {e}"));
    assert!(
        output.status.success(),
        "DuckDB 1.4 could not read the file: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let (rows, trips) = printed.trim().split_once(' ').expect("two numbers");
    (rows.parse().unwrap(), trips.parse().unwrap())
}

/// Files written before the move to DuckDB 1.4 LTS (DuckDB 2.0, storage v1.4.0,
/// `_extra` as VARCHAR; see tests/fixtures/duckdb-2.0-loader.py) load on: their rows
/// stay, `_extra` becomes JSON with its text intact, new messages append once, and
/// DuckDB 1.4 reads the result.
#[test]
fn a_file_written_by_the_duckdb_2_0_loader_loads_on() {
    let f = Fixture::new();
    let fixture = iot_tests::repo().join("tests/fixtures/duckdb-2.0-loader.duckdb");
    std::fs::copy(&fixture, &f.db).expect("the fixture is readable");
    let extra_type = "SELECT data_type FROM information_schema.columns \
                      WHERE table_name = 'gps_data' AND column_name = '_extra'";
    assert_eq!(query_strings(&f.db, extra_type), ["VARCHAR"]);
    let old_rows = f.rows();
    assert_eq!(old_rows, 1500);

    let produced = f.one_vehicle(200);
    assert_success(&f.load(&[]));

    assert_eq!(query_strings(&f.db, extra_type), ["JSON"]);
    assert_eq!(f.rows() as u64, old_rows as u64 + produced);
    assert_each_offset_once(&f.db);
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream.gps_data \
             WHERE _extra->>'note' = 'written by the DuckDB 2.0 loader'"
        ),
        74
    );
    assert_eq!(
        query_i64(&f.db, "SELECT count(*) FROM iot_stream._dead_letters"),
        1
    );
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'iot_stream'"
        ),
        0,
        "the old loader's views are dropped: dbt's models define trips and incidents"
    );
    assert_eq!(
        query_i64(&f.db, "SELECT count(*) FROM iot_stream._loads"),
        2,
        "the old run's record stays beside the new one"
    );
    assert_eq!(read_with_duckdb_1_4(&f.db).0, f.rows());
}

#[test]
fn a_column_the_model_gained_is_added_and_old_rows_read_null() {
    let f = Fixture::new();
    f.one_vehicle(100);
    assert_success(&f.load(&[]));
    // Make the table look as an older loader left it, without accuracy_m.
    {
        let conn = duckdb::Connection::open(&f.db).unwrap();
        conn.execute_batch("ALTER TABLE iot_stream.gps_data DROP COLUMN accuracy_m")
            .unwrap();
    }
    let old_rows = f.count("gps_data");
    f.one_vehicle(100);
    assert_success(&f.load(&[]));
    assert_eq!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream.gps_data WHERE accuracy_m IS NULL"
        ),
        old_rows
    );
    assert!(
        query_i64(
            &f.db,
            "SELECT count(*) FROM iot_stream.gps_data WHERE accuracy_m IS NOT NULL"
        ) > 0
    );
}

#[test]
fn a_database_file_that_cannot_be_created_is_exit_4() {
    let scratch = scratch_dir();
    let db = scratch
        .path()
        .join("no-such-directory")
        .join("iot_service.duckdb");
    let output = run(binary("load").arg("--duckdb-file").arg(&db), LIMIT);
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the database file") && stderr.contains("no-such-directory"),
        "{stderr}"
    );
}
