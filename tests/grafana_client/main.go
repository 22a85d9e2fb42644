// Command grafana_client talks to a ClickHouse HTTP endpoint the way Grafana's
// ClickHouse data source (github.com/grafana/clickhouse-datasource, Go backend) does in
// HTTP protocol mode, and prints what every request returned as one JSON line each.
//
// Mirrored from grafana/clickhouse-datasource v4.20.0 (package.json), commit
// 1d04063a31fb30f9582cd0b3aeaacb7d350b0dcf (2026-08-20), which requires
// github.com/ClickHouse/clickhouse-go/v2 v2.47.0 (pinned in go.mod here too):
//
//   - pkg/plugin/driver.go buildClickHouseOptions / Connect: the clickhouse.Options below
//     (Protocol HTTP, Auth{Database, Username, Password}, ClientInfo products grafana and
//     clickhouse-datasource, Compression GZIP (HTTP mode), DialTimeout 10 s and
//     ReadTimeout 60 s (the defaults of pkg/plugin/settings.go), HttpHeaders, HttpUrlPath,
//     Settings = the data source's custom settings), clickhouse.OpenDB, the pool settings
//     (ConnMaxLifetime 5 min, MaxIdleConns 25, MaxOpenConns 50) and db.PingContext, which
//     is the health check (sqlds CheckHealth calls Connect).
//   - driver.go CheckMinServerVersion: `SELECT version()`.
//   - driver.go MutateQuery: data queries carry clickhouse.WithClientInfo comments
//     (grafana_user:..., grafana_dashboard:..., grafana_panel:...) and, with a dashboard
//     time zone, clickhouse.WithUserLocation.
//   - pkg/macros/macros.go: $__timeFilter(c) -> c >= toDateTime(from) AND c <= toDateTime(to),
//     $__timeInterval(c) -> toStartOfInterval(toDateTime(c), INTERVAL n second),
//     $__fromTime/$__toTime -> toDateTime(unix), $__timeFilter_ms(c) ->
//     fromUnixTimestamp64Milli(ms); expanded here by the same rules (expand below).
//   - src/data/CHDatasource.ts (query builder schema look-ups, sent through the same
//     backend): SHOW DATABASES, SHOW TABLES FROM "db", DESC TABLE "db"."table",
//     SELECT name, type, table FROM system.columns WHERE database IN ('db') AND table = 't';
//     src/data/CHVariableSupport.tsx: SELECT name FROM system.columns ... ORDER BY name.
//   - src/data/sqlGenerator.ts (query builder SQL): time series, table and logs shapes.
//
// Rows are read as sqlds/sqlutil reads them (database/sql, rows.ColumnTypes(), a value of
// each column's ScanType), so a type the driver cannot decode fails here as it would in
// Grafana.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

type column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	ScanType string `json:"scan_type"`
}

type result struct {
	Step    string          `json:"step"`
	SQL     string          `json:"sql,omitempty"`
	OK      bool            `json:"ok"`
	Error   string          `json:"error,omitempty"`
	Columns []column        `json:"columns,omitempty"`
	Rows    [][]interface{} `json:"rows,omitempty"`
}

var (
	timeFilter   = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`)
	timeFilterMs = regexp.MustCompile(`\$__timeFilter_ms\(([^)]+)\)`)
	timeInterval = regexp.MustCompile(`\$__timeInterval\(([^)]+)\)`)
)

// expand replaces the macros as pkg/macros/macros.go does.
func expand(sql string, from, to time.Time, interval time.Duration) string {
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	ms := func(t time.Time) string { return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli()) }
	sql = timeFilterMs.ReplaceAllStringFunc(sql, func(m string) string {
		c := strings.TrimSpace(timeFilterMs.FindStringSubmatch(m)[1])
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, ms(from), c, ms(to))
	})
	sql = timeFilter.ReplaceAllStringFunc(sql, func(m string) string {
		c := strings.TrimSpace(timeFilter.FindStringSubmatch(m)[1])
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, dt(from), c, dt(to))
	})
	seconds := int(interval.Seconds())
	if seconds < 1 {
		seconds = 1
	}
	sql = timeInterval.ReplaceAllStringFunc(sql, func(m string) string {
		c := strings.TrimSpace(timeInterval.FindStringSubmatch(m)[1])
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", c, seconds)
	})
	sql = strings.ReplaceAll(sql, "$__fromTime", dt(from))
	sql = strings.ReplaceAll(sql, "$__toTime", dt(to))
	return sql
}

func jsonValue(v interface{}) interface{} {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case *big.Int:
		return x.String()
	case []byte:
		return string(x)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Ptr {
		if rv.IsNil() {
			return nil
		}
		return jsonValue(rv.Elem().Interface())
	}
	if rv.Kind() == reflect.Slice {
		out := make([]interface{}, rv.Len())
		for i := range out {
			out[i] = jsonValue(rv.Index(i).Interface())
		}
		return out
	}
	if rv.Kind() == reflect.Map {
		out := map[string]interface{}{}
		for _, k := range rv.MapKeys() {
			out[fmt.Sprint(k.Interface())] = jsonValue(rv.MapIndex(k).Interface())
		}
		return out
	}
	if s, ok := v.(fmt.Stringer); ok && rv.Kind() == reflect.Struct {
		return s.String()
	}
	return v
}

func emit(r result) {
	line, err := json.Marshal(r)
	if err != nil {
		line, _ = json.Marshal(result{Step: r.Step, Error: "cannot encode result: " + err.Error()})
	}
	fmt.Println(string(line))
}

func main() {
	host := flag.String("host", "127.0.0.1", "server (the data source's Server address)")
	port := flag.Int("port", 8124, "server port (HTTP)")
	user := flag.String("user", "", "username")
	password := flag.String("password", "", "password")
	database := flag.String("database", "", "default database (the data source's Default database)")
	from := flag.Int64("from", 0, "time range start, unix seconds")
	to := flag.Int64("to", 0, "time range end, unix seconds")
	interval := flag.Int("interval", 60, "query interval, seconds ($__timeInterval)")
	setting := flag.String("setting", "", "custom setting name=value (the data source's Custom settings)")
	only := flag.String("only", "", "run only: ping (connect + ping + SELECT version())")
	flag.Parse()

	settings := clickhouse.Settings{}
	if *setting != "" {
		name, value, _ := strings.Cut(*setting, "=")
		settings[name] = value
	}
	// buildClickHouseOptions, protocol "http", no TLS, no custom headers or path.
	opts := &clickhouse.Options{
		Addr: []string{fmt.Sprintf("%s:%d", *host, *port)},
		Auth: clickhouse.Auth{Database: *database, Username: *user, Password: *password},
		ClientInfo: clickhouse.ClientInfo{Products: []struct{ Name, Version string }{
			{Name: "grafana", Version: "12.3.0"},
			{Name: "clickhouse-datasource", Version: "4.20.0"},
		}},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionGZIP},
		DialTimeout: 10 * time.Second,
		HttpHeaders: map[string]string{},
		HttpUrlPath: "",
		Protocol:    clickhouse.HTTP,
		ReadTimeout: 60 * time.Second,
		Settings:    settings,
	}
	db := clickhouse.OpenDB(opts)
	db.SetConnMaxLifetime(5 * time.Minute)
	db.SetMaxIdleConns(25)
	db.SetMaxOpenConns(50)
	defer db.Close()

	connectCtx, cancel := context.WithTimeout(context.Background(), opts.DialTimeout)
	if err := db.PingContext(connectCtx); err != nil {
		emit(result{Step: "ping", Error: err.Error()})
	} else {
		emit(result{Step: "ping", OK: true})
	}
	cancel()

	fromT, toT := time.Unix(*from, 0).UTC(), time.Unix(*to, 0).UTC()
	step := time.Duration(*interval) * time.Second
	base := context.Background()
	// MutateQuery: the comments Grafana adds to a dashboard panel's query.
	panel := clickhouse.Context(base, clickhouse.WithClientInfo(clickhouse.ClientInfo{
		Comment: []string{"grafana_user:admin", "grafana_dashboard:shopfunnel-kpi", "grafana_panel:2"},
	}))
	utc, _ := time.LoadLocation("UTC")
	panelTZ := clickhouse.Context(panel, clickhouse.WithUserLocation(utc))

	query := func(ctx context.Context, name, raw string) {
		sql := expand(raw, fromT, toT, step)
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second) // sqlds DriverSettings.Timeout
		defer cancel()
		r := result{Step: name, SQL: sql}
		rows, err := db.QueryContext(ctx, sql)
		if err != nil {
			r.Error = err.Error()
			emit(r)
			return
		}
		defer rows.Close()
		types, err := rows.ColumnTypes()
		if err != nil {
			r.Error = err.Error()
			emit(r)
			return
		}
		for _, t := range types {
			r.Columns = append(r.Columns, column{t.Name(), t.DatabaseTypeName(), fmt.Sprint(t.ScanType())})
		}
		for rows.Next() {
			values := make([]interface{}, len(types))
			for i, t := range types {
				values[i] = reflect.New(t.ScanType()).Interface()
			}
			if err := rows.Scan(values...); err != nil {
				r.Error = err.Error()
				emit(r)
				return
			}
			row := make([]interface{}, len(values))
			for i, v := range values {
				row[i] = jsonValue(v)
			}
			r.Rows = append(r.Rows, row)
		}
		if err := rows.Err(); err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		emit(r)
	}
	exec := func(name, sql string) {
		r := result{Step: name, SQL: sql}
		ctx, cancel := context.WithTimeout(base, 60*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, sql); err != nil {
			r.Error = err.Error()
		} else {
			r.OK = true
		}
		emit(r)
	}

	// Health check (Connect's ping above) and CheckMinServerVersion.
	query(base, "version", "SELECT version()")
	if *only == "ping" {
		return
	}
	db_ := *database
	// Query builder schema look-ups (CHDatasource.ts, CHVariableSupport.tsx).
	query(base, "show_databases", "SHOW DATABASES")
	query(base, "show_tables", fmt.Sprintf(`SHOW TABLES FROM "%s"`, db_))
	query(base, "desc_table", fmt.Sprintf(`DESC TABLE "%s"."funnel_steps_minute"`, db_))
	query(base, "system_columns", fmt.Sprintf(
		`SELECT name, type, table FROM system.columns WHERE database IN ('%s') AND table = 'funnel_steps_minute'`, db_))
	query(base, "variable_tables", fmt.Sprintf(`SELECT name FROM system.tables WHERE database IN ('%s') ORDER BY name`, db_))

	// Time series: a hand-written panel query with macros (as the dashboards use them)
	// and the query builder's aggregate time series shape (sqlGenerator.ts).
	query(panelTZ, "timeseries_macros",
		"SELECT $__timeInterval(window_start) AS time, sum(entered) AS entered\n"+
			"FROM funnel_steps_minute FINAL\nWHERE $__timeFilter(window_start)\nGROUP BY time\nORDER BY time")
	query(panel, "timeseries_builder", fmt.Sprintf(
		`SELECT $__timeInterval(window_start) as "time", step_name, sum(entered) as entered `+
			`FROM "%s"."v_funnel_steps_minute" WHERE ( time >= $__fromTime AND time <= $__toTime ) `+
			`GROUP BY time, step_name ORDER BY time ASC, step_name ASC LIMIT 1000`, db_))
	query(panel, "timeseries_view",
		"SELECT $__timeInterval(window_start) AS time,\n       sum(orders) AS orders,\n       sum(gmv_minor) AS gmv_minor\n"+
			"FROM v_kpi_minute\nWHERE $__timeFilter(window_start)\nGROUP BY time\nORDER BY time")
	// A panel whose time range holds no rows.
	query(panel, "timeseries_empty",
		"SELECT $__timeInterval(window_start) AS time, sum(entered) AS entered\n"+
			"FROM funnel_steps_minute FINAL\nWHERE $__timeFilter(window_start) AND funnel = 'no-such-funnel'\n"+
			"GROUP BY time\nORDER BY time")
	// Table (sqlGenerator.ts table shape).
	query(panel, "table_builder", fmt.Sprintf(
		`SELECT funnel, step, step_name, sum(entered) as entered FROM "%s"."v_funnel_steps_minute" `+
			`WHERE ( funnel = 'checkout' ) GROUP BY funnel, step, step_name ORDER BY step ASC LIMIT 1000`, db_))
	// Logs (sqlGenerator.ts logs shape) on the raw events, with Map, Array, Nullable columns.
	query(panelTZ, "logs_builder", fmt.Sprintf(
		`SELECT event_time as "timestamp", event_type as "body", stream as "level", user_id, `+
			`experiments, item_ids, value_minor FROM "%s"."events_raw" `+
			`WHERE ( timestamp >= $__fromTime AND timestamp <= $__toTime ) ORDER BY timestamp DESC LIMIT 1000`, db_))
	query(panelTZ, "logs_ms_filter", fmt.Sprintf(
		`SELECT count() AS events FROM "%s"."events_raw" WHERE $__timeFilter_ms(event_time)`, db_))

	// Writes and DDL must be refused.
	exec("insert_values", "INSERT INTO funnel_steps_minute (funnel, step, entered) VALUES ('x', 1, 1)")
	exec("insert_select", "INSERT INTO funnel_steps_minute SELECT * FROM funnel_steps_minute")
	exec("create_table", "CREATE TABLE grafana_probe (a UInt8) ENGINE = Memory")
	exec("drop_table", "DROP TABLE funnel_steps_minute")
	exec("alter_delete", "ALTER TABLE funnel_steps_minute DELETE WHERE 1")
	// A client-side batch (INSERT ... then rows sent in Native format).
	batch := result{Step: "insert_batch", SQL: "INSERT INTO funnel_steps_minute (funnel, step, entered)"}
	if err := func() error {
		conn, err := clickhouse.Open(opts)
		if err != nil {
			return err
		}
		defer conn.Close()
		b, err := conn.PrepareBatch(base, batch.SQL)
		if err != nil {
			return err
		}
		if err := b.Append("x", uint8(1), uint64(1)); err != nil {
			return err
		}
		return b.Send()
	}(); err != nil {
		batch.Error = err.Error()
	} else {
		batch.OK = true
	}
	emit(batch)
}
