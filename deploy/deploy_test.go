// Package deploy holds octoroll's deployment recipes (Envoy bootstrap, docker-compose,
// Kubernetes, systemd, Prometheus). Its only Go code is this test, which checks every
// recipe without Docker, Kubernetes or Envoy: files parse, the Envoy bootstrap passes the
// v3 Bootstrap proto's validation, manifests have the expected structure, and, where
// promtool is installed, the Prometheus rules and configuration pass it.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"gopkg.in/yaml.v3"

	"github.com/octoacme/octoroll/admin"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/metrics"

	// Types the bootstrap names in typed_config Any fields; importing them registers
	// them so protojson can resolve the Anys.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// docs reads every YAML document of path.
func docs(t *testing.T, path string) []any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(out)+1, err)
		}
		if v != nil {
			out = append(out, v)
		}
	}
}

// get follows a path of map keys and list indexes through decoded YAML.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func TestEveryFileParses(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			if len(docs(t, path)) == 0 {
				t.Errorf("%s: no YAML document", path)
			}
		case ".json":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				t.Errorf("%s: invalid JSON", path)
			}
		default:
			return nil
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Errorf("parsed %d YAML/JSON files under deploy/, want at least 8", n)
	}
}

// parseBootstrap converts a YAML bootstrap to JSON and then to the Envoy v3 proto,
// rejecting unknown fields, as Envoy does.
func parseBootstrap(t *testing.T, name string, doc any) *bootstrapv3.Bootstrap {
	t.Helper()
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("%s: to JSON: %v", name, err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(j, &b); err != nil {
		t.Fatalf("%s: into envoy.config.bootstrap.v3.Bootstrap: %v", name, err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("%s: Validate: %v", name, err)
	}
	return &b
}

func TestEnvoyBootstrap(t *testing.T) {
	// The standalone bootstrap and the copy in the Kubernetes ConfigMap.
	type bootstrapDoc struct {
		name, octorollHost string
		doc                any
	}
	all := []bootstrapDoc{{"envoy/bootstrap.yaml", "octoroll", docs(t, "envoy/bootstrap.yaml")[0]}}
	for _, d := range docs(t, "kubernetes/example-app.yaml") {
		if str(d, "kind") == "ConfigMap" && str(d, "metadata", "name") == "envoy-bootstrap" {
			var inner any
			if err := yaml.Unmarshal([]byte(str(d, "data", "bootstrap.yaml")), &inner); err != nil {
				t.Fatalf("ConfigMap envoy-bootstrap: %v", err)
			}
			all = append(all, bootstrapDoc{"kubernetes/example-app.yaml ConfigMap envoy-bootstrap", "octoroll.octoroll.svc.cluster.local", inner})
		}
	}
	if len(all) != 2 {
		t.Fatalf("found %d bootstraps, want envoy/bootstrap.yaml and the ConfigMap envoy-bootstrap", len(all))
	}

	for _, bd := range all {
		t.Run(bd.name, func(t *testing.T) {
			b := parseBootstrap(t, bd.name, bd.doc)

			if b.GetNode().GetId() == "" || b.GetNode().GetCluster() == "" {
				t.Errorf("node id/cluster placeholders missing: %v", b.GetNode())
			}
			dr := b.GetDynamicResources()
			ads := dr.GetAdsConfig()
			if ads.GetApiType() != corev3.ApiConfigSource_GRPC || ads.GetTransportApiVersion() != corev3.ApiVersion_V3 {
				t.Errorf("ads_config api_type %v transport %v, want GRPC V3", ads.GetApiType(), ads.GetTransportApiVersion())
			}
			if gs := ads.GetGrpcServices(); len(gs) != 1 || gs[0].GetEnvoyGrpc().GetClusterName() != "octoroll" {
				t.Errorf("ads_config grpc_services %v, want envoy_grpc cluster octoroll", gs)
			}
			for name, cs := range map[string]*corev3.ConfigSource{"lds_config": dr.GetLdsConfig(), "cds_config": dr.GetCdsConfig()} {
				if cs.GetAds() == nil || cs.GetResourceApiVersion() != corev3.ApiVersion_V3 {
					t.Errorf("%s = %v, want ads with resource_api_version V3", name, cs)
				}
			}

			var xds, admin bool
			for _, c := range b.GetStaticResources().GetClusters() {
				switch c.GetName() {
				case "octoroll":
					xds = true
					ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
					if ep.GetAddress() != bd.octorollHost || ep.GetPortValue() != 18000 {
						t.Errorf("octoroll cluster endpoint %s:%d, want %s:18000", ep.GetAddress(), ep.GetPortValue(), bd.octorollHost)
					}
					var opts upstreamhttpv3.HttpProtocolOptions
					any := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
					if any == nil || any.UnmarshalTo(&opts) != nil || opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
						t.Errorf("octoroll cluster is not explicitly HTTP/2: %v", any)
					}
				case "envoy_admin":
					admin = true
				}
			}
			if !xds || !admin {
				t.Errorf("static clusters: octoroll %v, envoy_admin %v; want both", xds, admin)
			}
			sa := b.GetAdmin().GetAddress().GetSocketAddress()
			if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 9901 {
				t.Errorf("admin on %s:%d, want 127.0.0.1:9901", sa.GetAddress(), sa.GetPortValue())
			}
			ls := b.GetStaticResources().GetListeners()
			if len(ls) != 1 || ls[0].GetAddress().GetSocketAddress().GetPortValue() != 9902 {
				t.Errorf("want one static listener, prometheus_stats on 9902; got %v", ls)
			}
			checkLatencyBuckets(t, b)
		})
	}
}

// checkLatencyBuckets: the bootstrap sets octoroll's bucket ladder
// (metrics.LatencyBucketsMS) for every cluster's upstream_rq_time, the histogram the
// rollout checks read, and for no other stat.
func checkLatencyBuckets(t *testing.T, b *bootstrapv3.Bootstrap) {
	t.Helper()
	settings := b.GetStatsConfig().GetHistogramBucketSettings()
	if len(settings) != 1 {
		t.Fatalf("stats_config.histogram_bucket_settings: %d entries, want one for upstream_rq_time", len(settings))
	}
	re, err := regexp.Compile(settings[0].GetMatch().GetSafeRegex().GetRegex())
	if err != nil {
		t.Fatalf("histogram_bucket_settings match: %v", err)
	}
	for stat, want := range map[string]bool{
		"cluster.checkout|v2.upstream_rq_time": true, "cluster.octoroll.upstream_rq_time": true,
		"cluster.checkout|v2.upstream_rq_timeout": false, "http.ingress.downstream_rq_time": false,
	} {
		if re.MatchString(stat) != want {
			t.Errorf("histogram_bucket_settings match %q on %s: %v, want %v", re, stat, !want, want)
		}
	}
	if got, want := settings[0].GetBuckets(), metrics.LatencyBucketsMS(); !slices.Equal(got, want) {
		t.Errorf("upstream_rq_time buckets differ from metrics.LatencyBucketsMS:\n got %v\nwant %v", got, want)
	}
}

func TestCompose(t *testing.T) {
	c := docs(t, "docker-compose.yaml")[0]
	svcs, _ := get(c, "services").(map[string]any)
	var names []string
	for n := range svcs {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"app-v1", "app-v2", "client", "envoy-client", "envoy-v1", "envoy-v2", "octoroll", "prometheus"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for _, pair := range [][2]string{{"envoy-v1", "app-v1"}, {"envoy-v2", "app-v2"}, {"envoy-client", "client"}} {
		envoy := svcs[pair[0]]
		if got := str(envoy, "network_mode"); got != "service:"+pair[1] {
			t.Errorf("%s network_mode %q, want sidecar of %s", pair[0], got, pair[1])
		}
		args := strings.Join(anyStrings(list(envoy, "command")), " ")
		if !strings.Contains(args, "-c /etc/envoy/bootstrap.yaml") || !strings.Contains(args, "--service-node "+pair[1]) {
			t.Errorf("%s command %q lacks the bootstrap or --service-node", pair[0], args)
		}
		// The YAML anchor carries image and the bootstrap mount into every sidecar.
		if !strings.HasPrefix(str(envoy, "image"), "envoyproxy/envoy:") {
			t.Errorf("%s image %q", pair[0], str(envoy, "image"))
		}
	}
	for _, v := range []string{"v1", "v2"} {
		if got := str(svcs["app-"+v], "environment", "APP_VERSION"); got != v {
			t.Errorf("app-%s APP_VERSION %q", v, got)
		}
	}
	env, _ := get(svcs["octoroll"], "environment").(map[string]any)
	for _, k := range []string{"OCTOROLL_CONFIG", "OCTOROLL_STATE_DIR", "OCTOROLL_XDS_ADDR", "OCTOROLL_ADMIN_ADDR", "OCTOROLL_PROMETHEUS_URL"} {
		if _, ok := env[k]; !ok {
			t.Errorf("octoroll environment lacks %s", k)
		}
	}
	if got := str(svcs["octoroll"], "environment", "OCTOROLL_XDS_ADDR"); got != ":18000" {
		t.Errorf("OCTOROLL_XDS_ADDR %q, want :18000 (the bootstrap's octoroll cluster port)", got)
	}
	compose := map[string]string{}
	for k, v := range env {
		compose[k], _ = v.(string)
	}
	checkXDSBind(t, "docker-compose", compose)
	// Every bind-mounted file exists.
	for name, s := range svcs {
		for _, v := range anyStrings(list(s, "volumes")) {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	for _, ctx := range []string{"octoroll", "app-v1", "app-v2"} {
		if df := str(svcs[ctx], "build", "dockerfile"); df != "deploy/Dockerfile" {
			t.Errorf("%s builds from %q", ctx, df)
		} else if _, err := os.Stat("Dockerfile"); err != nil {
			t.Error(err)
		}
	}
}

func anyStrings(l []any) []string {
	var out []string
	for _, v := range l {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	paths, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	objs := map[string]any{} // "Kind/name"
	for _, p := range paths {
		for i, d := range docs(t, p) {
			kind, name := str(d, "kind"), str(d, "metadata", "name")
			if str(d, "apiVersion") == "" || kind == "" || name == "" {
				t.Errorf("%s document %d: apiVersion %q kind %q metadata.name %q; want all three", p, i+1, str(d, "apiVersion"), kind, name)
				continue
			}
			if kind != "Namespace" && str(d, "metadata", "namespace") != "octoroll" {
				t.Errorf("%s %s/%s: namespace %q, want octoroll", p, kind, name, str(d, "metadata", "namespace"))
			}
			objs[kind+"/"+name] = d
		}
	}
	for _, k := range []string{"Namespace/octoroll", "ConfigMap/octoroll-catalog", "PersistentVolumeClaim/octoroll-state",
		"Deployment/octoroll", "Service/octoroll", "ConfigMap/envoy-bootstrap",
		"Deployment/example-v1", "Deployment/example-v2", "Service/example-v1", "Service/example-v2", "Deployment/example-client"} {
		if objs[k] == nil {
			t.Errorf("missing %s", k)
		}
	}

	// octoroll: settings, state volume, ports.
	dep := objs["Deployment/octoroll"]
	c := get(dep, "spec", "template", "spec", "containers", 0)
	env := map[string]any{}
	for _, e := range list(c, "env") {
		env[str(e, "name")] = e
	}
	if str(env["OCTOROLL_STATE_DIR"], "value") == "" || str(env["OCTOROLL_CONFIG"], "value") == "" {
		t.Errorf("octoroll env lacks OCTOROLL_STATE_DIR or OCTOROLL_CONFIG: %v", env)
	}
	if str(env["OCTOROLL_ADMIN_TOKEN"], "valueFrom", "secretKeyRef", "name") == "" {
		t.Errorf("OCTOROLL_ADMIN_TOKEN does not come from a Secret")
	}
	values := map[string]string{}
	for k, e := range env {
		values[k] = str(e, "value")
	}
	checkXDSBind(t, "kubernetes", values)
	mounts := map[string]string{}
	for _, m := range list(c, "volumeMounts") {
		mounts[str(m, "name")] = str(m, "mountPath")
	}
	if mounts["state"] != str(env["OCTOROLL_STATE_DIR"], "value") {
		t.Errorf("state volume mounted at %q, OCTOROLL_STATE_DIR %q", mounts["state"], str(env["OCTOROLL_STATE_DIR"], "value"))
	}
	if !strings.HasPrefix(str(env["OCTOROLL_CONFIG"], "value"), mounts["catalog"]+"/") {
		t.Errorf("catalog mounted at %q, OCTOROLL_CONFIG %q", mounts["catalog"], str(env["OCTOROLL_CONFIG"], "value"))
	}
	var ports []int
	for _, p := range list(objs["Service/octoroll"], "spec", "ports") {
		n, _ := get(p, "port").(int)
		ports = append(ports, n)
	}
	if !slices.Equal(ports, []int{18000, 8080}) {
		t.Errorf("octoroll Service ports %v, want [18000 8080]", ports)
	}
	checkCatalog(t, "ConfigMap octoroll-catalog", str(objs["ConfigMap/octoroll-catalog"], "data", "catalog.yaml"))

	// Every pod with a sidecar: the node id is the pod name, from the downward API.
	for _, name := range []string{"example-v1", "example-v2", "example-client"} {
		var envoy any
		for _, c := range list(objs["Deployment/"+name], "spec", "template", "spec", "containers") {
			if str(c, "name") == "envoy" {
				envoy = c
			}
		}
		if envoy == nil {
			t.Errorf("Deployment %s has no envoy container", name)
			continue
		}
		args := strings.Join(anyStrings(list(envoy, "args")), " ")
		if !strings.Contains(args, "--service-node $(POD_NAME)") || !strings.Contains(args, "--service-cluster ") {
			t.Errorf("%s envoy args %q lack --service-node $(POD_NAME) / --service-cluster", name, args)
		}
		var fromPod bool
		for _, e := range list(envoy, "env") {
			fromPod = fromPod || (str(e, "name") == "POD_NAME" && str(e, "valueFrom", "fieldRef", "fieldPath") == "metadata.name")
		}
		if !fromPod {
			t.Errorf("%s envoy has no POD_NAME from metadata.name", name)
		}
	}
}

// checkCatalog checks the structure of a catalog in a recipe: each service has a name,
// a port, versions with host:port endpoints, and a stable version among them.
func checkCatalog(t *testing.T, where, text string) {
	t.Helper()
	var c any
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	svcs := list(c, "services")
	if len(svcs) == 0 {
		t.Fatalf("%s: no services", where)
	}
	for _, s := range svcs {
		name := str(s, "name")
		if port, _ := get(s, "port").(int); name == "" || port < 1 || port > 65535 {
			t.Errorf("%s: service %q port %v", where, name, get(s, "port"))
		}
		var versions []string
		for _, v := range list(s, "versions") {
			versions = append(versions, str(v, "name"))
			for _, field := range []string{"endpoints", "metrics"} {
				for _, ep := range anyStrings(list(v, field)) {
					if _, _, err := net.SplitHostPort(ep); err != nil {
						t.Errorf("%s: %s/%s %s %q: %v", where, name, str(v, "name"), field, ep, err)
					}
				}
			}
			if len(list(v, "endpoints")) == 0 {
				t.Errorf("%s: %s/%s has no endpoints", where, name, str(v, "name"))
			}
		}
		if !slices.Contains(versions, str(s, "stable")) {
			t.Errorf("%s: %s stable %q is not one of %v", where, name, str(s, "stable"), versions)
		}
	}
}

func TestComposeCatalog(t *testing.T) {
	b, err := os.ReadFile("catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkCatalog(t, "catalog.yaml", string(b))
}

// TestSettingsNames checks that the recipes use only settings the binaries read.
func TestSettingsNames(t *testing.T) {
	known := map[string]bool{}
	for _, k := range []string{"OCTOROLL_CONFIG", "OCTOROLL_STATE_DIR", "OCTOROLL_XDS_ADDR", "OCTOROLL_ADMIN_ADDR", "OCTOROLL_ADMIN_TOKEN",
		"OCTOROLL_ADMIN_ALLOWED_HOSTS", "OCTOROLL_ADMIN_TOKEN_FILE", "OCTOROLL_ADMIN_TOKENS_FILE", "OCTOROLL_ADMIN_READ_TOKEN_REQUIRED",
		"OCTOROLL_XDS_INSECURE", "OCTOROLL_XDS_TLS_REQUIRE_NODE_IDENTITY",
		"OCTOROLL_PROMETHEUS_URL", "OCTOROLL_LOG_FORMAT", "OCTOROLL_LOG_LEVEL", "OCTOROLL_CHECK_INTERVAL",
		"OCTOROLL_XDS_TLS_CERT", "OCTOROLL_XDS_TLS_KEY", "OCTOROLL_XDS_TLS_CLIENT_CA",
		"OCTOROLL_STORE", "OCTOROLL_ETCD_ENDPOINTS", "OCTOROLL_ETCD_PREFIX", "OCTOROLL_ETCD_TIMEOUT", "OCTOROLL_LEASE_TTL",
		"OCTOROLL_REPLICA_ID", "OCTOROLL_ADVERTISE_ADMIN",
		"APP_SERVICE", "APP_VERSION", "APP_GRPC_ADDR", "APP_HTTP_ADDR", "APP_ERROR_RATE", "APP_LATENCY",
		"APP_LATENCY_JITTER", "APP_LATENCY_SIGMA", "APP_SEED", "APP_LOG_FORMAT", "APP_LOG_LEVEL"} {
		known[k] = true
	}
	re := regexp.MustCompile(`\b(?:OCTOROLL|APP)_[A-Z_]+\b`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllString(string(b), -1) {
			if !known[m] {
				t.Errorf("%s uses unknown setting %s", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/octoroll.service")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string][]string{}
	var cur string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = line[1 : len(line)-1]
			sections[cur] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == "" {
				t.Fatalf("line %d: %q is not key=value in a section", i+1, line)
			}
			sections[cur][k] = append(sections[cur][k], v)
		}
	}
	for _, want := range []struct{ section, key, value string }{
		{"Service", "ExecStart", "/usr/local/bin/octoroll serve"},
		{"Service", "EnvironmentFile", "/etc/octoroll/octoroll.env"},
		{"Service", "Restart", "on-failure"},
		{"Service", "DynamicUser", "yes"},
		{"Service", "StateDirectory", "octoroll"},
		{"Service", "Environment", "OCTOROLL_STATE_DIR=/var/lib/octoroll"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectSystem", "strict"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if !slices.Contains(sections[want.section][want.key], want.value) {
			t.Errorf("[%s] %s = %v, want %q", want.section, want.key, sections[want.section][want.key], want.value)
		}
	}
	b, err = os.ReadFile("systemd/octoroll.env")
	if err != nil {
		t.Fatalf("the EnvironmentFile template: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	checkXDSBind(t, "systemd", env)
	if env["OCTOROLL_ADMIN_TOKEN"] != "" {
		t.Errorf("systemd: the admin token is set in the environment file; use OCTOROLL_ADMIN_TOKEN_FILE")
	}
}

// checkXDSBind applies octoroll's rule to a recipe's settings: xDS beyond loopback
// needs TLS or OCTOROLL_XDS_INSECURE=true (the default address is loopback).
func checkXDSBind(t *testing.T, where string, env map[string]string) {
	t.Helper()
	addr := env["OCTOROLL_XDS_ADDR"]
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: OCTOROLL_XDS_ADDR %q: %v", where, addr, err)
		return
	}
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	tls := env["OCTOROLL_XDS_TLS_CERT"] != "" && env["OCTOROLL_XDS_TLS_KEY"] != ""
	if !loopback && !tls && env["OCTOROLL_XDS_INSECURE"] != "true" {
		t.Errorf("%s: xDS on %q without TLS or OCTOROLL_XDS_INSECURE=true: octoroll refuses to start", where, addr)
	}
}

// needTool returns the path of an outside binary, skipping the test when it is missing
// outside CI and failing it in CI.
func needTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not on PATH (CI=true): %s", name, hint)
	}
	t.Skipf("%s not on PATH: %s", name, hint)
	return ""
}

func TestPrometheusRules(t *testing.T) {
	d := docs(t, "prometheus/alerts.yaml")[0]
	groups := list(d, "groups")
	if len(groups) == 0 {
		t.Fatal("no groups")
	}
	alerts := map[string]bool{}
	for _, g := range groups {
		if str(g, "name") == "" {
			t.Error("group without a name")
		}
		for i, r := range list(g, "rules") {
			name := str(r, "alert")
			if name == "" || strings.TrimSpace(str(r, "expr")) == "" {
				t.Errorf("group %s rule %d: alert %q expr %q; want both", str(g, "name"), i, name, str(r, "expr"))
			}
			if str(r, "labels", "severity") == "" || str(r, "annotations", "summary") == "" {
				t.Errorf("%s: want labels.severity and annotations.summary", name)
			}
			if f := get(r, "for"); f != nil {
				if s, ok := f.(string); !ok || !regexp.MustCompile(`^[0-9]+[smh]$`).MatchString(s) {
					t.Errorf("%s: for %v is not a duration", name, f)
				}
			}
			alerts[name] = true
		}
	}
	for _, want := range []string{"OctorollRollback", "OctorollProxiesNotConverged", "OctorollXDSNack", "OctorollMetricsSourceDown", "OctorollConfigReloadFailed"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}

	// Every alert links its runbook, a section of this directory's README.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, r := range list(g, "rules") {
			name := str(r, "alert")
			want := "https://github.com/octoacme/octoroll/blob/main/deploy/README.md#runbook-" + strings.ToLower(name)
			if got := str(r, "annotations", "runbook_url"); got != want {
				t.Errorf("%s: runbook_url %q, want %q", name, got, want)
			}
			if !strings.Contains(string(readme), "### Runbook: "+name+"\n") {
				t.Errorf("README.md has no section \"### Runbook: %s\"", name)
			}
		}
	}
	// The rule tests use the reasons octoroll emits.
	tests, err := os.ReadFile("prometheus/alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reasons := regexp.MustCompile(`reason="([^"]*)"`).FindAllStringSubmatch(string(tests), -1)
	if len(reasons) == 0 {
		t.Error("alerts_test.yaml has no series with a reason")
	}
	for _, m := range reasons {
		if !slices.Contains(controller.RollbackCauses, controller.Cause(m[1])) {
			t.Errorf("alerts_test.yaml: reason %q is not a rollback cause octoroll emits (%v)", m[1], controller.RollbackCauses)
		}
	}

	promtool := needTool(t, "promtool", "install the Debian package prometheus")
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yaml"},
		{"test", "rules", "prometheus/alerts_test.yaml"},
		{"check", "config", "prometheus/prometheus.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// recipeObjects reads the Kubernetes objects of the files matching glob, by "Kind/name".
func recipeObjects(t *testing.T, glob string) map[string]any {
	t.Helper()
	paths, err := filepath.Glob(glob)
	if err != nil || len(paths) == 0 {
		t.Fatalf("%s: no manifests: %v", glob, err)
	}
	objs := map[string]any{}
	for _, p := range paths {
		for _, d := range docs(t, p) {
			objs[str(d, "kind")+"/"+str(d, "metadata", "name")] = d
		}
	}
	return objs
}

// container returns the container named name of a workload's pod template.
func container(workload any, name string) any {
	for _, c := range list(workload, "spec", "template", "spec", "containers") {
		if str(c, "name") == name {
			return c
		}
	}
	return nil
}

// TestProbes: the single-replica recipe probes the admin API, readiness on /readyz
// (store, catalog, xDS listener) and liveness on /healthz, on the named admin port, with
// a Host (the pod IP) the admin API answers; the replicas recipe keeps readiness on the
// xDS port, so that an etcd outage, which fails every replica's /readyz, keeps every
// replica in the Service serving its last configuration, and probes liveness on /healthz.
func TestProbes(t *testing.T) {
	httpGet := func(c any, probe string) (path, port string) {
		return str(c, probe, "httpGet", "path"), str(c, probe, "httpGet", "port")
	}
	single := container(recipeObjects(t, "kubernetes/*.yaml")["Deployment/octoroll"], "octoroll")
	if p, port := httpGet(single, "readinessProbe"); p != "/readyz" || port != "admin" {
		t.Errorf("octoroll.yaml readinessProbe httpGet %s on %q, want /readyz on admin", p, port)
	}
	if p, port := httpGet(single, "livenessProbe"); p != "/healthz" || port != "admin" {
		t.Errorf("octoroll.yaml livenessProbe httpGet %s on %q, want /healthz on admin", p, port)
	}
	var ports []string
	for _, p := range list(single, "ports") {
		ports = append(ports, str(p, "name"))
	}
	if !slices.Contains(ports, "admin") {
		t.Errorf("octoroll.yaml: no container port named admin: %v", ports)
	}
	// The kubelet sends the pod IP as Host.
	env := map[string]string{}
	for _, e := range list(single, "env") {
		env[str(e, "name")] = str(e, "value")
	}
	_, adminPort, _ := net.SplitHostPort(env["OCTOROLL_ADMIN_ADDR"])
	if !admin.HostAllowed(env["OCTOROLL_ADMIN_ADDR"], strings.Split(env["OCTOROLL_ADMIN_ALLOWED_HOSTS"], ","), net.JoinHostPort("10.244.1.17", adminPort)) {
		t.Errorf("octoroll.yaml: the admin API on %q does not answer the kubelet's Host (the pod IP)", env["OCTOROLL_ADMIN_ADDR"])
	}

	replicas := container(recipeObjects(t, "kubernetes/replicas/*.yaml")["StatefulSet/octoroll"], "octoroll")
	if got := str(replicas, "readinessProbe", "tcpSocket", "port"); got != "xds" {
		t.Errorf("replicas/octoroll.yaml readinessProbe on %q, want tcpSocket xds (an etcd outage fails /readyz on every replica)", got)
	}
	if p, port := httpGet(replicas, "livenessProbe"); p != "/healthz" || port != "admin" {
		t.Errorf("replicas/octoroll.yaml livenessProbe httpGet %s on %q, want /healthz on admin", p, port)
	}
	b, err := os.ReadFile("kubernetes/replicas/octoroll.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Readiness is the xDS port, not /readyz: with etcd down") {
		t.Error("replicas/octoroll.yaml: the reason for probing readiness on the xDS port is gone")
	}
}

// TestNoServiceAccountToken: no pod of the recipes talks to the Kubernetes API, so none
// gets a service account token.
func TestNoServiceAccountToken(t *testing.T) {
	for _, glob := range []string{"kubernetes/*.yaml", "kubernetes/replicas/*.yaml"} {
		for k, o := range recipeObjects(t, glob) {
			if get(o, "spec", "template", "spec") == nil {
				continue
			}
			if v, ok := get(o, "spec", "template", "spec", "automountServiceAccountToken").(bool); !ok || v {
				t.Errorf("%s %s: automountServiceAccountToken %v, want false", glob, k, get(o, "spec", "template", "spec", "automountServiceAccountToken"))
			}
		}
	}
}

// pinned matches an image pinned by digest or by an exact version tag.
var pinned = regexp.MustCompile(`^[^:@\s]+(:v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$`)

// TestImagesPinned: every image a recipe runs, and every image the Dockerfile builds
// from, is pinned to a digest or an exact version, never latest or a moving minor tag.
func TestImagesPinned(t *testing.T) {
	var images []string
	for _, glob := range []string{"kubernetes/*.yaml", "kubernetes/replicas/*.yaml"} {
		for k, o := range recipeObjects(t, glob) {
			for _, field := range []string{"containers", "initContainers"} {
				for _, c := range list(o, "spec", "template", "spec", field) {
					images = append(images, k+" "+str(c, "image"))
				}
			}
		}
	}
	for _, f := range []string{"docker-compose.yaml", "docker-compose.replicas.yaml"} {
		svcs, _ := get(docs(t, f)[0], "services").(map[string]any)
		for name, s := range svcs {
			if img := str(s, "image"); img != "" {
				images = append(images, f+" "+name+" "+img)
			} else if str(s, "build", "dockerfile") == "" && str(s, "extends", "file") == "" {
				t.Errorf("%s %s: neither image, build nor extends", f, name)
			}
		}
	}
	for _, img := range images {
		fields := strings.Fields(img)
		if !pinned.MatchString(fields[len(fields)-1]) {
			t.Errorf("%s: not pinned to a digest or an exact version", img)
		}
	}
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]bool{"scratch": true}
	var goImage string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "FROM" {
			continue
		}
		if !stages[f[1]] && !pinned.MatchString(f[1]) {
			t.Errorf("Dockerfile: FROM %s is not pinned to a digest or an exact version", f[1])
		}
		if strings.HasPrefix(f[1], "golang:") {
			goImage = f[1]
		}
		if len(f) == 4 && strings.EqualFold(f[2], "AS") {
			stages[f[3]] = true
		}
	}
	// The build image's Go is at least go.mod's.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go ([0-9.]+)$`).FindSubmatch(mod)
	got := regexp.MustCompile(`^golang:([0-9.]+)`).FindStringSubmatch(goImage)
	if want == nil || got == nil || semverLess(got[1], string(want[1])) {
		t.Errorf("Dockerfile builds with %q, go.mod needs go %s", goImage, want[1])
	}
}

// semverLess compares dotted version numbers.
func semverLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			fmt.Sscan(as[i], &x)
		}
		if i < len(bs) {
			fmt.Sscan(bs[i], &y)
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// TestServiceMonitor: the ServiceMonitor scrapes /metrics on the admin port through
// exactly one Service of each recipe (one target per pod, not two).
func TestServiceMonitor(t *testing.T) {
	sm := recipeObjects(t, "kubernetes/servicemonitor.yaml")["ServiceMonitor/octoroll"]
	if sm == nil || str(sm, "apiVersion") != "monitoring.coreos.com/v1" || str(sm, "metadata", "namespace") != "octoroll" {
		t.Fatalf("kubernetes/servicemonitor.yaml: want ServiceMonitor octoroll (monitoring.coreos.com/v1) in namespace octoroll: %v", sm)
	}
	ep := list(sm, "spec", "endpoints")
	if len(ep) != 1 || str(ep[0], "port") != "admin" || str(ep[0], "path") != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %v, want port admin path /metrics", ep)
	}
	if ns := anyStrings(list(sm, "spec", "namespaceSelector", "matchNames")); !slices.Equal(ns, []string{"octoroll"}) {
		t.Errorf("ServiceMonitor namespaceSelector %v, want [octoroll]", ns)
	}
	selector, _ := get(sm, "spec", "selector", "matchLabels").(map[string]any)
	if len(selector) == 0 {
		t.Fatal("ServiceMonitor has no selector.matchLabels")
	}
	for _, glob := range []string{"kubernetes/octoroll.yaml", "kubernetes/replicas/*.yaml"} {
		var matched []string
		for k, o := range recipeObjects(t, glob) {
			if !strings.HasPrefix(k, "Service/") {
				continue
			}
			labels, _ := get(o, "metadata", "labels").(map[string]any)
			ok := true
			for lk, lv := range selector {
				ok = ok && labels[lk] == lv
			}
			if !ok {
				continue
			}
			matched = append(matched, k)
			if !slices.ContainsFunc(list(o, "spec", "ports"), func(p any) bool { return str(p, "name") == "admin" }) {
				t.Errorf("%s %s: no port named admin", glob, k)
			}
		}
		if len(matched) != 1 {
			t.Errorf("%s: the ServiceMonitor selects %v, want exactly one Service", glob, matched)
		}
	}
}

// TestDockerignore: the build context leaves out the repository's history, binaries and
// node modules, and keeps every file the images compile.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(line, "**") || strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore: %q: keep to plain patterns (this test matches them with filepath.Match)", line)
		}
		patterns = append(patterns, strings.Trim(line, "/"))
	}
	// Docker excludes a path when a pattern matches it or one of its parent directories.
	excluded := func(path string) bool {
		parts := strings.Split(path, "/")
		for i := range parts {
			for _, p := range patterns {
				if ok, _ := filepath.Match(p, strings.Join(parts[:i+1], "/")); ok {
					return true
				}
			}
		}
		return false
	}
	for _, p := range []string{".git/config", "bin/octoroll", "xds/testdata/nodeclient/node_modules/x/package.json"} {
		if !excluded(p) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if not .Standard}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}`,
		"../cmd/octoroll", "../examples/app").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		rel, err := filepath.Rel(root, f[0])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, downloaded in the image
		}
		for _, file := range f[1:] {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, file)))
		}
	}
	if len(needed) < 20 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, p := range needed {
		if excluded(p) {
			t.Errorf(".dockerignore excludes %s, which the image build compiles", p)
		}
	}
}

// TestVersionStamped: the Dockerfile takes the version as a build argument and stamps it
// with -ldflags; the binary built so says it in --version, in octoroll_build_info, and
// answers the probes.
func TestVersionStamped(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ARG VERSION=`).Match(b) || !strings.Contains(dockerfileLDFlags(t), "-X main.version=${VERSION}") {
		t.Fatalf("Dockerfile: want ARG VERSION and -ldflags \"-X main.version=${VERSION}\"")
	}
	for _, f := range []string{"docker-compose.yaml", "docker-compose.replicas.yaml"} {
		svcs, _ := get(docs(t, f)[0], "services").(map[string]any)
		for name, s := range svcs {
			if str(s, "build", "target") == "octoroll" && str(s, "build", "args", "VERSION") == "" {
				t.Errorf("%s %s: the octoroll build passes no VERSION", f, name)
			}
		}
	}
	bin := buildOctoroll(t)
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "octoroll "+stampedVersion {
		t.Errorf("octoroll --version: %q, %v; want octoroll %s", out, err, stampedVersion)
	}
	catalog := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(catalog, []byte("services:\n  - name: web\n    port: 10001\n    stable: v1\n    versions:\n      - name: v1\n        endpoints: [\"127.0.0.1:1\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startOctoroll(t, bin, catalog)
	for _, path := range []string{"/readyz", "/healthz"} {
		resp, err := http.Get(p.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	if m := p.get(t, "/metrics"); !strings.Contains(m, fmt.Sprintf(`version=%q} 1`, stampedVersion)) {
		t.Errorf("/metrics: octoroll_build_info without version %q:\n%s", stampedVersion, grepLines(m, "octoroll_build_info"))
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
