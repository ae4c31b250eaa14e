package deploy

import (
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/octoacme/octoroll/admin"
)

// TestComposeReplicas checks the three-replica compose recipe: etcd, three replicas
// with distinct ids on the same etcd, catalog and token, each advertising its own
// admin address and answering to the alias the sidecars' bootstrap resolves, and the
// example workloads.
func TestComposeReplicas(t *testing.T) {
	c := docs(t, "docker-compose.replicas.yaml")[0]
	svcs, _ := get(c, "services").(map[string]any)
	var names []string
	for n := range svcs {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"app-v1", "app-v2", "client", "envoy-client", "envoy-v1", "envoy-v2", "etcd",
		"octoroll-0", "octoroll-1", "octoroll-2", "prometheus"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	base, _ := get(docs(t, "docker-compose.yaml")[0], "services").(map[string]any)
	for _, n := range []string{"app-v1", "app-v2", "client", "prometheus"} {
		if f, s := str(svcs[n], "extends", "file"), str(svcs[n], "extends", "service"); f != "docker-compose.yaml" || base[s] == nil {
			t.Errorf("%s extends %s %s, want a service of docker-compose.yaml", n, f, s)
		}
	}
	etcdURL := "http://etcd:2379"
	if !strings.Contains(strings.Join(anyStrings(list(svcs["etcd"], "command")), " "), "--advertise-client-urls="+etcdURL) {
		t.Errorf("etcd does not advertise %s", etcdURL)
	}
	ids := map[string]bool{}
	for _, n := range []string{"octoroll-0", "octoroll-1", "octoroll-2"} {
		s := svcs[n]
		env := func(k string) string { return str(s, "environment", k) }
		if env("OCTOROLL_STORE") != "etcd" || env("OCTOROLL_ETCD_ENDPOINTS") != etcdURL {
			t.Errorf("%s: store %q on %q, want etcd on %s", n, env("OCTOROLL_STORE"), env("OCTOROLL_ETCD_ENDPOINTS"), etcdURL)
		}
		if env("OCTOROLL_ADMIN_TOKEN") != str(svcs["octoroll-0"], "environment", "OCTOROLL_ADMIN_TOKEN") || env("OCTOROLL_ADMIN_TOKEN") == "" {
			t.Errorf("%s: admin token differs from octoroll-0's: a forwarded mutation would be refused", n)
		}
		checkXDSBind(t, n, map[string]string{"OCTOROLL_XDS_ADDR": env("OCTOROLL_XDS_ADDR"), "OCTOROLL_XDS_INSECURE": env("OCTOROLL_XDS_INSECURE")})
		if adv, _ := url.Parse(env("OCTOROLL_ADVERTISE_ADMIN")); adv == nil || !admin.HostAllowed(env("OCTOROLL_ADMIN_ADDR"), strings.Split(env("OCTOROLL_ADMIN_ALLOWED_HOSTS"), ","), adv.Host) {
			t.Errorf("%s: OCTOROLL_ADMIN_ALLOWED_HOSTS %q does not name %q: the leader would refuse mutations a follower forwards", n, env("OCTOROLL_ADMIN_ALLOWED_HOSTS"), env("OCTOROLL_ADVERTISE_ADMIN"))
		}
		if env("OCTOROLL_XDS_ADDR") != ":18000" {
			t.Errorf("%s: OCTOROLL_XDS_ADDR %q, want :18000 (the bootstrap's octoroll cluster port)", n, env("OCTOROLL_XDS_ADDR"))
		}
		id := env("OCTOROLL_REPLICA_ID")
		if id == "" || ids[id] {
			t.Errorf("%s: replica id %q empty or repeated", n, id)
		}
		ids[id] = true
		u, err := url.Parse(env("OCTOROLL_ADVERTISE_ADMIN"))
		if err != nil || u.Hostname() != n || u.Port() != strings.TrimPrefix(env("OCTOROLL_ADMIN_ADDR"), ":") {
			t.Errorf("%s: advertises %q, want its own name and admin port %s", n, env("OCTOROLL_ADVERTISE_ADMIN"), env("OCTOROLL_ADMIN_ADDR"))
		}
		if !slices.Contains(anyStrings(list(s, "networks", "default", "aliases")), "octoroll") {
			t.Errorf("%s: not reachable as octoroll, the address of the sidecars' xDS cluster", n)
		}
		if str(s, "build", "dockerfile") != "deploy/Dockerfile" {
			t.Errorf("%s builds from %q", n, str(s, "build", "dockerfile"))
		}
	}
	for _, n := range []string{"envoy-v1", "envoy-v2", "envoy-client"} {
		if got := anyStrings(list(svcs[n], "depends_on")); len(got) != 3 {
			t.Errorf("%s depends on %v, want the three replicas", n, got)
		}
	}
}

// TestKubernetesReplicas checks the three-replica Kubernetes recipe.
func TestKubernetesReplicas(t *testing.T) {
	paths, err := filepath.Glob("kubernetes/replicas/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	objs := map[string]any{}
	for _, p := range paths {
		for i, d := range docs(t, p) {
			kind, name := str(d, "kind"), str(d, "metadata", "name")
			if str(d, "apiVersion") == "" || kind == "" || name == "" {
				t.Errorf("%s document %d lacks apiVersion, kind or name", p, i+1)
				continue
			}
			if kind != "Namespace" && str(d, "metadata", "namespace") != "octoroll" {
				t.Errorf("%s %s/%s: namespace %q, want octoroll", p, kind, name, str(d, "metadata", "namespace"))
			}
			objs[kind+"/"+name] = d
		}
	}
	for _, k := range []string{"Namespace/octoroll", "ConfigMap/octoroll-catalog", "StatefulSet/octoroll", "Service/octoroll",
		"Service/octoroll-peers", "PodDisruptionBudget/octoroll", "StatefulSet/etcd", "Service/etcd"} {
		if objs[k] == nil {
			t.Errorf("missing %s", k)
		}
	}
	ss := objs["StatefulSet/octoroll"]
	if n, _ := get(ss, "spec", "replicas").(int); n != 3 {
		t.Errorf("octoroll replicas %d, want 3", n)
	}
	peers := str(ss, "spec", "serviceName")
	if peers != "octoroll-peers" || str(objs["Service/octoroll-peers"], "spec", "clusterIP") != "None" {
		t.Errorf("serviceName %q: want the headless Service octoroll-peers", peers)
	}
	c := get(ss, "spec", "template", "spec", "containers", 0)
	env := map[string]any{}
	for _, e := range list(c, "env") {
		env[str(e, "name")] = e
	}
	val := func(k string) string { return str(env[k], "value") }
	if val("OCTOROLL_STORE") != "etcd" {
		t.Errorf("OCTOROLL_STORE %q, want etcd", val("OCTOROLL_STORE"))
	}
	u, err := url.Parse(val("OCTOROLL_ETCD_ENDPOINTS"))
	var etcdPort int
	for _, p := range list(objs["Service/etcd"], "spec", "ports") {
		etcdPort, _ = get(p, "port").(int)
	}
	if err != nil || !strings.HasPrefix(u.Hostname(), "etcd.octoroll.svc") || u.Port() != "2379" || etcdPort != 2379 {
		t.Errorf("OCTOROLL_ETCD_ENDPOINTS %q does not name the etcd Service (port %d)", val("OCTOROLL_ETCD_ENDPOINTS"), etcdPort)
	}
	if str(env["POD_NAME"], "valueFrom", "fieldRef", "fieldPath") != "metadata.name" || val("OCTOROLL_REPLICA_ID") != "$(POD_NAME)" {
		t.Errorf("the replica id is not the pod name")
	}
	if a := val("OCTOROLL_ADVERTISE_ADMIN"); !strings.HasPrefix(a, "http://$(POD_NAME)."+peers+".octoroll.svc") || !strings.HasSuffix(a, ":8080") {
		t.Errorf("OCTOROLL_ADVERTISE_ADMIN %q, want the pod's name in %s on the admin port", a, peers)
	}
	if str(env["OCTOROLL_ADMIN_TOKEN"], "valueFrom", "secretKeyRef", "name") != "octoroll-admin" {
		t.Errorf("OCTOROLL_ADMIN_TOKEN does not come from the Secret octoroll-admin every replica shares")
	}
	checkXDSBind(t, "kubernetes replicas", map[string]string{"OCTOROLL_XDS_ADDR": val("OCTOROLL_XDS_ADDR"), "OCTOROLL_XDS_INSECURE": val("OCTOROLL_XDS_INSECURE")})
	if a, _ := url.Parse(strings.ReplaceAll(val("OCTOROLL_ADVERTISE_ADMIN"), "$(POD_NAME)", "octoroll-1")); a == nil || !admin.HostAllowed(val("OCTOROLL_ADMIN_ADDR"), strings.Split(val("OCTOROLL_ADMIN_ALLOWED_HOSTS"), ","), a.Host) {
		t.Errorf("OCTOROLL_ADMIN_ALLOWED_HOSTS %q does not name the replicas' advertised host: the leader would refuse mutations a follower forwards", val("OCTOROLL_ADMIN_ALLOWED_HOSTS"))
	}
	if val("OCTOROLL_STATE_DIR") != "" || len(list(ss, "spec", "volumeClaimTemplates")) != 0 {
		t.Errorf("the replicas keep state of their own; it is in etcd")
	}
	if get(c, "readinessProbe", "httpGet") != nil {
		t.Errorf("readiness on HTTP (/readyz) would take every replica out of the Service while etcd is down")
	}
	var ports []int
	for _, p := range list(objs["Service/octoroll"], "spec", "ports") {
		n, _ := get(p, "port").(int)
		ports = append(ports, n)
	}
	if !slices.Equal(ports, []int{18000, 8080}) {
		t.Errorf("octoroll Service ports %v, want [18000 8080]", ports)
	}
	checkCatalog(t, "replicas ConfigMap octoroll-catalog", str(objs["ConfigMap/octoroll-catalog"], "data", "catalog.yaml"))
}
