package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"

	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// procs starts and stops the demo's processes. Each runs in its own process group so
// that stopping the demo, Ctrl-C included, leaves nothing behind.
type procs struct {
	dir  string // logs go here
	mu   sync.Mutex
	list []*exec.Cmd
}

// start runs bin with args, its output in DIR/name.log.
func (p *procs) start(name, bin string, args []string, env []string) (*exec.Cmd, error) {
	logf, err := os.Create(filepath.Join(p.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.mu.Lock()
	p.list = append(p.list, cmd)
	p.mu.Unlock()
	go func() { cmd.Wait(); logf.Close() }()
	return cmd, nil
}

// startPiped is start with stdout returned to the caller (stderr to the log).
func (p *procs) startPiped(name, bin string, args []string, env []string) (*exec.Cmd, *bufio.Reader, error) {
	logf, err := os.Create(filepath.Join(p.dir, name+".log"))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.mu.Lock()
	p.list = append(p.list, cmd)
	p.mu.Unlock()
	return cmd, bufio.NewReader(out), nil
}

// stopAll sends SIGTERM to every process group, waits up to grace, then SIGKILLs what
// is left. It returns the pids it started, for callers that check they are gone.
func (p *procs) stopAll(grace time.Duration) []int {
	p.mu.Lock()
	list := p.list
	p.list = nil
	p.mu.Unlock()
	var pids []int
	for _, c := range list {
		if c.Process == nil {
			continue
		}
		pids = append(pids, c.Process.Pid)
		syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state is the field after "(comm)".
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' && i+2 < len(b) {
			return b[i+2] != 'Z'
		}
	}
	return true
}

// freePorts reserves n distinct loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls cond every 100 ms until it returns nil or ctx ends or d passes.
func waitFor(ctx context.Context, d time.Duration, what string, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s: not ready after %s: %v", what, d, last)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}
