package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/octoacme/octoroll/admin"
	"github.com/octoacme/octoroll/catalog"
	"github.com/octoacme/octoroll/controller"
	"github.com/octoacme/octoroll/healthcheck"
	"github.com/octoacme/octoroll/metrics"
	"github.com/octoacme/octoroll/notify"
	"github.com/octoacme/octoroll/replica"
	"github.com/octoacme/octoroll/report"
	"github.com/octoacme/octoroll/runner"
	"github.com/octoacme/octoroll/xds"

	"github.com/octoacme/octoroll/internal/logging"
)

// serve runs the daemon until ctx is done: catalog watcher, state store, xDS server,
// health prober, metrics source, rollout runner and admin server.
func serve(ctx context.Context, args []string, _ io.Writer) error {
	cfg, err := loadConfig("serve", args)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	defer log.Sync()

	// The catalog is read once up front: an invalid file stops the start with every
	// problem named, before anything listens.
	var (
		run      *runner.Runner
		notifier *notify.Notifier
		am       *admin.Metrics
	)
	// A catalog the runner refuses (it would take away what an active rollout serves)
	// stays on offer: the watcher reports it refused and offers it again until the
	// runner takes it, for example once the rollout that blocked it ends.
	watcher, err := catalog.NewWatcher(cfg.Config, log, func(c *catalog.Catalog) error {
		if run == nil || notifier == nil {
			return errors.New("octoroll is still starting")
		}
		if err := run.SetCatalog(ctx, c); err != nil {
			return err
		}
		publicationGauges(am, run)
		notifier.Update(c.Notifications)
		return nil
	})
	if err != nil {
		return err
	}

	st, est, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()

	xs := xds.NewServer(log, xds.Options{CertFile: cfg.XDSCert, KeyFile: cfg.XDSKey, ClientCAFile: cfg.XDSClientCA,
		RequireNodeIdentity: cfg.XDSNodeIdentity})
	xlis, err := net.Listen("tcp", cfg.XDSAddr)
	if err != nil {
		return fmt.Errorf("xds listener: %w", err)
	}
	if cfg.XDSCert == "" && !admin.IsLoopback(xlis.Addr().String()) {
		log.Warn("xDS listens beyond loopback in plaintext without authentication (--xds-insecure): anyone who reaches it reads every route and endpoint and can pose as a proxy",
			zap.String("addr", xlis.Addr().String()))
	}

	// Endpoint names are probed at the addresses publication serves for them.
	prober := healthcheck.New(log, healthcheck.Options{Resolve: func(host string) ([]netip.Addr, error) {
		if run == nil {
			return nil, errors.New("octoroll is still starting")
		}
		return run.ResolvedHost(host)
	}})
	var source metrics.Source
	var scrape *metrics.Scrape
	var alerts runner.AlertSource
	if cfg.PrometheusURL != "" {
		pc, err := cfg.prometheus()
		if err != nil {
			return err
		}
		p, err := metrics.NewPrometheus(log, pc)
		if err != nil {
			return err
		}
		source, alerts = p, p
	} else {
		scrape = metrics.NewScrape(log, metrics.ScrapeConfig{Interval: cfg.ScrapeInterval})
		source = scrape
	}

	reg := prometheus.NewRegistry()
	am = admin.NewMetrics(reg)
	notifier = notify.New(log, watcher.Current().Notifications, notify.Options{
		Health: prober,
		OnEvent: func(d notify.Delivery) {
			if d.Outcome == notify.Delivered || run == nil {
				return
			}
			am.NotificationFailure(d.Sink)
			reason := fmt.Sprintf("notification %s to %s %s after %d attempts", d.Event, d.Sink, d.Outcome, d.Attempts)
			if d.Err != nil {
				reason += ": " + d.Err.Error()
			}
			if err := run.Record(controller.Event{Kind: eventNotificationFailed, RolloutID: d.RolloutID, Reason: reason}); err != nil {
				log.Warn("record notification failure", zap.Error(err))
			}
		},
	})
	sourceName := "scrape"
	if cfg.PrometheusURL != "" {
		sourceName = "prometheus"
	}
	source = metrics.Observed(source, func(up bool) { am.SourceUp(sourceName, up) })
	var (
		rep     *replica.Replica
		health  *replica.Health
		pub     runner.Publisher = xs
		leader  runner.Leadership
		leaderF func() (string, bool)
		checks  runner.Health = prober
	)
	if est != nil {
		advertise := cfg.Etcd.AdvertiseAdmin
		if advertise == "" {
			advertise = "http://" + cfg.AdminAddr
		}
		rep = replica.New(replica.Options{
			Log: log, Store: est, TTL: cfg.Etcd.LeaseTTL,
			Self:   replica.Info{ID: replicaID(cfg), Admin: advertise, XDS: xlis.Addr().String()},
			Report: replica.NewReport(xs, watcher.Current),
			Load: func(ctx context.Context) error {
				if run == nil {
					return errors.New("octoroll is still starting")
				}
				return run.Reload(ctx)
			},
		})
		pub, leader = clusterXDS{Server: xs, rep: rep}, rep
		// Only the leader probes; every replica publishes its results.
		health = replica.NewHealth(rep, prober)
		checks = health
		reg.MustRegister(rep.Collector())
		leaderF = func() (string, bool) {
			if rep.Leading() {
				return "", true
			}
			l, ok := rep.Leader()
			if !ok {
				return "", false
			}
			return l.Admin, false
		}
	}
	resolver, note := cfg.resolver()
	if note != "" {
		log.Warn(note)
	}
	dnsMin, dnsMax := cfg.dnsTTL()
	run, err = runner.New(ctx, watcher.Current(), runner.Options{
		Log: log, Store: st, XDS: pub, Metrics: source, Health: checks, Alerts: alerts, MinWindow: cfg.MetricsWindow,
		Notify: events{metrics: am, notifier: runnerNotifier(notifier, rep)}, OnPublish: am.ObservePush,
		Resolver: resolver, DNSMinTTL: dnsMin, DNSRefresh: dnsMax, Leader: leader,
	})
	if err != nil {
		return err
	}
	publicationGauges(am, run)
	allowed, _ := cfg.allowedHosts() // validated by loadConfig
	tokens, err := admin.NewTokens(admin.TokenSource{File: cfg.AdminTokensFile, Single: cfg.AdminToken, SingleFile: cfg.AdminTokenFile}, log)
	if err != nil {
		return err
	}
	if cfg.adminTokenFlag {
		log.Warn("--admin-token shows the token to anyone who can list processes: prefer OCTOROLL_ADMIN_TOKEN or --admin-token-file")
	}
	adm := admin.New(log, admin.Options{
		Backend:       run,
		Proxies:       xs.Proxies,
		ProxyConfig:   xs.ProxyConfig,
		XDSStats:      xs.Stats,
		CatalogStatus: watcher.Status,
		Ready: func() error {
			// Messages name no paths: /readyz is served to anyone who can reach it.
			if est != nil {
				if err := replicaReady(st, rep); err != nil {
					return err
				}
			} else if err := st.Ping(); err != nil {
				return errors.New("state store is not open")
			}
			if err := run.StoreError(); err != nil {
				// A rollback published but not yet persisted: it serves, and a restart
				// now would return to the state before it.
				return err
			}
			if watcher.Current() == nil {
				return errors.New("no catalog loaded")
			}
			c, err := net.DialTimeout("tcp", xlis.Addr().String(), time.Second)
			if err != nil {
				return errors.New("xDS server is not accepting connections")
			}
			return c.Close()
		},
		Tokens:            tokens,
		ReadTokenRequired: cfg.AdminReadTokenRequired,
		Addr:              cfg.AdminAddr,
		AllowedHosts:      allowed,
		Report: func(r controller.Rollout, evs []controller.Event) ([]byte, any) {
			rep := report.Build(r, evs)
			return rep.Markdown(), rep
		},
		Registry: reg,
		Metrics:  am,
		Version:  version,
		Leader:   leaderF,
		Replicas: replicasFunc(rep),
	})
	alis, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return xs.Serve(gctx, xlis) })
	g.Go(func() error { return watcher.Run(gctx) })
	g.Go(func() error { return prober.Run(gctx) })
	if scrape != nil {
		g.Go(func() error { return scrape.Run(gctx) })
	}
	g.Go(func() error { return run.Run(gctx) })
	if rep != nil {
		g.Go(func() error { return rep.Run(gctx) })
		g.Go(func() error { return health.Run(gctx) })
		// The leader notifies from the event log, once across the replicas.
		g.Go(func() error { return rep.RunNotifications(gctx, notifier) })
	}
	g.Go(func() error { return notifier.Run(gctx) })
	g.Go(func() error { return reloadOnHUP(gctx, watcher, log) })
	g.Go(func() error { return adm.Serve(gctx, alis) })
	g.Go(func() error { return tokens.Run(gctx, tokenReload) })
	log.Info("octoroll serving",
		zap.String("xds", xlis.Addr().String()),
		zap.String("admin", "http://"+alis.Addr().String()+"/"),
		zap.String("catalog", cfg.Config),
		zap.Int("services", len(watcher.Current().Services)),
		zap.String("state", st.Path()),
		zap.String("metrics", metricsSourceName(cfg)))
	err = g.Wait()
	// The hooks still being asked or told stop here; an onRollback hook not told yet
	// is told after the next start.
	run.Close()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("octoroll stopped")
	return err
}

// reloadOnHUP reloads the catalog on SIGHUP; a bad file keeps the last good catalog, and
// a refused one is offered again. The watcher logs a failure itself.
func reloadOnHUP(ctx context.Context, w *catalog.Watcher, log *zap.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if err := w.Reload(); err == nil {
				log.Info("catalog reloaded on SIGHUP", zap.String("catalog", w.Status().State()))
			}
		}
	}
}

// tokenReload is how often the admin token files are checked for changes.
const tokenReload = 2 * time.Second

// eventNotificationFailed is the history event of a notification not delivered.
const eventNotificationFailed = "notification_failed"

// events hands every rollout event to the admin metrics and the webhook notifier (when
// set); neither blocks.
type events struct {
	metrics  *admin.Metrics
	notifier *notify.Notifier
}

// runnerNotifier is the notifier the runner hands its events to: none with several
// replicas, where the leader notifies from the persisted event log instead
// (replica.RunNotifications), so that an event is sent once across a failover.
func runnerNotifier(n *notify.Notifier, rep *replica.Replica) *notify.Notifier {
	if rep != nil {
		return nil
	}
	return n
}

func (e events) Notify(ev controller.Event, r controller.Rollout) {
	e.metrics.Event(ev)
	if e.notifier != nil {
		e.notifier.Notify(ev, r)
	}
}

func metricsSourceName(cfg config) string {
	if cfg.PrometheusURL != "" {
		return "prometheus " + cfg.PrometheusURL
	}
	return "embedded scrape"
}

// publicationGauges sets every service's publication gauge from the runner's state;
// the events keep them current between calls.
func publicationGauges(m *admin.Metrics, run *runner.Runner) {
	for _, v := range run.Services() {
		m.PublicationState(v.Service.Name, v.Publication == nil || v.Publication.OK)
	}
}
