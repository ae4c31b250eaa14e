package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// child is a running load generator process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startChild re-executes this binary as a load generator of n clients of service
// against the xDS server at addr.
func startChild(addr, service string, n int) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-loadgen", "-addr", addr, "-service", service, "-n", strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start load generator: %w", err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<30)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c, nil
}

// await waits for the line want.
func (c *child) await(want string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return fmt.Errorf("load generator exited while waiting for %q", want)
			}
			if l == want {
				return nil
			}
		case <-t.C:
			return fmt.Errorf("load generator: no %q after %s", want, timeout)
		}
	}
}

func (c *child) report() (loadReport, error) {
	var rep loadReport
	if _, err := io.WriteString(c.stdin, "report\n"); err != nil {
		return rep, err
	}
	t := time.NewTimer(2 * time.Minute)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return rep, fmt.Errorf("load generator exited before its report")
			}
			if strings.HasPrefix(l, "{") {
				return rep, json.Unmarshal([]byte(l), &rep)
			}
		case <-t.C:
			return rep, fmt.Errorf("load generator: no report")
		}
	}
}

func (c *child) stop() {
	_, _ = io.WriteString(c.stdin, "quit\n")
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
