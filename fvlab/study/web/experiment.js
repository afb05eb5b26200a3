/*
 * The causal-understanding experiment (jsPsych 8), served by `fvlab study serve`.
 *
 * Flow: window-size check (a viewport of at least 780 × 450 — what an 800 × 600 window
 * leaves —, else a request to enlarge it) → consent (the
 * operator's text from api/consent; declining ends here, nothing is stored) → enrol (POST
 * api/participants, with Prolific's PROLIFIC_PID, STUDY_ID, SESSION_ID from the URL; the
 * server's cookie lets a reload resume) → preload images → instructions → practice with
 * feedback, repeated until all practice answers are right or the allowed attempts are used
 * (a failed practice ends the study politely: the practice answers are saved and the page goes
 * to the operator's practice_failed_url) → main and catch trials with a progress bar → submit
 * all answers at once (retried on network errors) → completion screen → redirect to the
 * completion URL (Prolific's, or the server's own page showing the completion code).
 *
 * `?simulate=data-only` or `?simulate=visual` runs jsPsych.simulate() instead of a person
 * (consent given, practice answered right); `&sim_rt_ms=N` makes every simulated response take
 * N ms (fast visual runs in tests). All URLs are relative, so the page works under a
 * reverse-proxy prefix (with trailing "/").
 */
/* global initJsPsych, jsPsychPreload, jsPsychInstructions, jsPsychHtmlButtonResponse,
   jsPsychOcclusionChoice */
(function () {
  "use strict";

  const MIN_WIDTH = 780; // the viewport of an 800 × 600 window (the layout fits it)
  const MIN_HEIGHT = 450;
  const display = document.getElementById("fvlab-experiment");

  /* A message box: `parts` are strings (text) or DOM nodes; nothing is parsed as HTML. */
  function say(id, ...parts) {
    const box = document.createElement("div");
    box.className = "fvlab-message";
    box.id = id;
    for (const part of parts) {
      if (typeof part === "string") {
        const p = document.createElement("p");
        p.textContent = part;
        box.appendChild(p);
      } else {
        box.appendChild(part);
      }
    }
    display.replaceChildren(box);
    return box;
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    let payload = null;
    try {
      payload = await response.json();
    } catch (err) {
      payload = { detail: response.statusText };
    }
    return { status: response.status, ok: response.ok, payload };
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /* Submit once; on network errors or 5xx try again (bounded). A 409 after a lost answer
     means an earlier try was stored. */
  async function submitWithRetry(url, body, tries) {
    let lastError = "";
    for (let k = 0; k < tries; k++) {
      try {
        const result = await postJSON(url, body);
        if (result.ok) return { stored: true, receipt: result.payload };
        if (result.status === 409 && k > 0) return { stored: true, receipt: {} };
        if (result.status < 500) return { stored: false, error: result.payload.detail };
        lastError = `server error ${result.status}`;
      } catch (err) {
        lastError = err.message;
      }
      await sleep(Math.min(1000 * 2 ** k, 8000));
    }
    return { stored: false, error: lastError };
  }

  /* Resolves once the window is at least MIN_WIDTH × MIN_HEIGHT (asks for it otherwise). */
  function bigEnoughWindow() {
    const fits = () => window.innerWidth >= MIN_WIDTH && window.innerHeight >= MIN_HEIGHT;
    if (fits()) return Promise.resolve();
    say(
      "fvlab-window",
      `Please make this browser window larger (at least ${MIN_WIDTH} × ${MIN_HEIGHT} pixels) ` +
        "or leave full-screen zoom; the study starts as soon as it fits."
    );
    return new Promise((resolve) => {
      const check = () => {
        if (fits()) {
          window.removeEventListener("resize", check);
          resolve();
        }
      };
      window.addEventListener("resize", check);
    });
  }

  /* The operator's consent text with "I agree" / "I do not agree"; resolves true or false. */
  async function askConsent(autoAgree) {
    const response = await fetch("api/consent");
    const text = response.ok ? (await response.json()).html : "";
    if (autoAgree) return true;
    const box = say("fvlab-consent");
    const body = element("div", { class: "fvlab-consent-text" });
    body.innerHTML = text; /* the operator's own HTML (trusted, from the server) */
    const agree = element("button", { class: "jspsych-btn", id: "fvlab-agree" }, "I agree");
    const decline = element(
      "button",
      { class: "jspsych-btn", id: "fvlab-decline" },
      "I do not agree"
    );
    const row = element("div", { class: "fvlab-consent-buttons" });
    row.append(agree, decline);
    box.append(body, row);
    return new Promise((resolve) => {
      agree.addEventListener("click", () => resolve(true));
      decline.addEventListener("click", () => resolve(false));
    });
  }

  function instructionPages(condition) {
    const refs =
      condition === "none"
        ? "<h2>No reference images</h2><p>In this study you will <b>not</b> see example " +
          "images of what the unit likes: use your own judgement.</p>"
        : "<h2>Reference images</h2><p>On the <b>left</b> of each screen you see nine " +
          "<b>reference images</b>: images the unit responds strongly to. Use them to " +
          "understand what the unit looks for.</p>";
    const where = condition === "none" ? "In the middle" : "On the right";
    return [
      "<h2>Welcome</h2><p>This study is about an artificial neural network that looks at " +
        "images. One of its <b>units</b> responds strongly to some image features and weakly " +
        "to others.</p><p>Your task is to predict how the unit reacts when part of an image " +
        "is covered.</p>",
      refs,
      `<h2>The question</h2><p>${where} you see an image (<i>original</i>, in the middle) ` +
        "and two copies of it, each with a different square patch covered (<i>left</i> and " +
        "<i>right</i>).</p><p>Which copy does the unit respond to <b>more</b>? The covered " +
        "part of that copy mattered less to the unit.</p>",
      "<h2>Answering</h2><p>Answer with the buttons <b>3 2 1 | 1 2 3</b>: the three on the " +
        "left choose the left image, the three on the right the right image. <b>3</b> means " +
        "you are sure, <b>1</b> that you are guessing.</p><p>First a few practice trials " +
        "show you whether you were right. Then the main part starts, without feedback; the " +
        "bar at the top shows how far you are.</p>",
    ];
  }

  async function main() {
    const params = new URLSearchParams(window.location.search);
    const simulateMode = params.get("simulate");
    const simulating = simulateMode === "data-only" || simulateMode === "visual";
    const simRt = Number(params.get("sim_rt_ms")) || 0;
    /* Simulation options of a trial: a fixed response time when asked for, plus `data`. */
    const sim = (trial, data) => {
      if (!simulating) return trial;
      const fixed = simRt > 0 ? { rt: simRt } : {};
      return { ...trial, simulation_options: { data: { ...fixed, ...data } } };
    };
    await bigEnoughWindow();
    let agreed;
    try {
      agreed = await askConsent(simulating);
    } catch (err) {
      say("fvlab-error", `Sorry, the study could not start: ${err.message}`);
      return;
    }
    if (!agreed) {
      say(
        "fvlab-declined",
        "You chose not to take part. Nothing was stored. You can close this window " +
          "(on Prolific: return the study)."
      );
      return;
    }
    const started = performance.now();
    say("fvlab-loading", "Starting the study…");
    let enrolment;
    try {
      const result = await postJSON("api/participants", {
        prolific_pid: params.get("PROLIFIC_PID"),
        study_id: params.get("STUDY_ID"),
        session_id: params.get("SESSION_ID"),
      });
      if (!result.ok) throw new Error(result.payload.detail || `status ${result.status}`);
      enrolment = result.payload;
    } catch (err) {
      say("fvlab-error", `Sorry, the study could not start: ${err.message}`);
      return;
    }
    const settings = enrolment.settings;
    display.replaceChildren();
    const jsPsych = initJsPsych({
      display_element: display,
      show_progress_bar: true,
      auto_update_progress_bar: false,
      message_progress_bar: "Progress",
    });
    jsPsych.data.addProperties({
      participant_id: enrolment.participant_id,
      condition: enrolment.condition,
    });
    let practiceAttempt = 0;
    let answeredMain = 0;

    const choiceTrial = (t) =>
      sim(
        {
          type: jsPsychOcclusionChoice,
          references: t.references,
          query: t.query,
          left: t.left,
          right: t.right,
          correct_side: t.correct_side,
          feedback_ms: t.kind === "practice" ? settings.feedback_ms : 0,
          data: { fvlab_trial: true, trial_id: t.trial_id, kind: t.kind },
          on_finish: (data) => {
            data.attempt = t.kind === "practice" ? practiceAttempt : 1;
            if (t.kind !== "practice") {
              answeredMain += 1;
              jsPsych.progressBar.progress = answeredMain / enrolment.trials.length;
            }
          },
        },
        /* a simulated participant knows the task: practice answers are right */
        t.kind === "practice" ? { response: t.correct_side === "left" ? 0 : 5 } : {}
      );
    const lastPracticePassed = () =>
      jsPsych.data
        .get()
        .filter({ fvlab_trial: true, kind: "practice", attempt: practiceAttempt })
        .values()
        .every((d) => d.correct === true);
    const practicePassed = () => !enrolment.practice.length || lastPracticePassed();

    const images = new Set();
    for (const t of enrolment.practice.concat(enrolment.trials)) {
      for (const url of [...t.references, t.query, t.left, t.right]) images.add(url);
    }
    const pages = instructionPages(enrolment.condition);
    const timeline = [
      { type: jsPsychPreload, images: [...images], message: "Loading images…" },
      sim(
        {
          type: jsPsychInstructions,
          pages: pages,
          show_clickable_nav: true,
          button_label_next: "Next",
          button_label_previous: "Back",
          data: { fvlab_part: "instructions" },
        },
        { view_history: pages.map((_, i) => ({ page_index: i, viewing_time: simRt })) }
      ),
    ];
    if (enrolment.practice.length) {
      timeline.push({
        timeline: [
          sim(
            {
              type: jsPsychHtmlButtonResponse,
              stimulus: () =>
                `<p>Practice round ${practiceAttempt + 1}: you will see whether you were right.</p>`,
              choices: ["Start practice"],
              on_finish: () => {
                practiceAttempt += 1;
              },
            },
            {}
          ),
          ...enrolment.practice.map(choiceTrial),
          sim(
            {
              type: jsPsychHtmlButtonResponse,
              stimulus: () => {
                if (lastPracticePassed()) return "<p>All practice answers were right.</p>";
                if (practiceAttempt < settings.max_practice_attempts)
                  return "<p>Not all answers were right. Please try the practice again.</p>";
                return (
                  "<p id='fvlab-practice-failed'>The practice rounds are over, and not all " +
                  "answers were right, so the study ends here. Thank you for your time!</p>"
                );
              },
              choices: ["Continue"],
            },
            {}
          ),
        ],
        loop_function: () =>
          !lastPracticePassed() && practiceAttempt < settings.max_practice_attempts,
      });
    }
    timeline.push({
      conditional_function: practicePassed,
      timeline: [
        sim(
          {
            type: jsPsychHtmlButtonResponse,
            stimulus: `<p>The main part starts now: ${enrolment.trials.length} trials without feedback.</p>`,
            choices: ["Start"],
          },
          {}
        ),
        ...enrolment.trials.map(choiceTrial),
      ],
    });

    if (simulating) {
      await jsPsych.simulate(timeline, simulateMode);
    } else {
      await jsPsych.run(timeline);
    }

    const passed = practicePassed();
    say("fvlab-saving", "Saving your answers…");
    const all = jsPsych.data.get();
    const instructions = all.filter({ fvlab_part: "instructions" }).values()[0];
    const submission = {
      token: enrolment.token,
      responses: all
        .filter({ fvlab_trial: true })
        .values()
        .map((d) => ({ trial_id: d.trial_id, attempt: d.attempt, response: d.response, rt_ms: d.rt })),
      instructions_ms: instructions ? instructions.rt : 0,
      total_ms: Math.round(performance.now() - started),
      practice_attempts: practiceAttempt,
      practice_passed: passed,
      user_agent: navigator.userAgent.slice(0, 500),
      jspsych_data: all.values(),
    };
    const url = `api/participants/${encodeURIComponent(enrolment.participant_id)}/submission`;
    const result = await submitWithRetry(url, submission, 6);
    if (!result.stored) {
      const link = element("a", { download: "answers.json" }, "Download them");
      link.href = "data:application/json," + encodeURIComponent(JSON.stringify(submission));
      const p = element("p");
      p.append(link, " and send the file to the researchers.");
      say("fvlab-error", `Sorry, your answers could not be saved (${result.error}).`, p);
      return;
    }
    const code = result.receipt.completion_code;
    let target = passed ? settings.completion_url : settings.practice_failed_url;
    if (!target) target = code ? `complete?code=${encodeURIComponent(code)}` : "complete";
    const link = element("a", { id: "fvlab-complete-link" }, "click here");
    link.href = target; /* a property, not HTML: no quoting problems */
    const p = element("p");
    p.append("You will be redirected in a moment, or ", link, ".");
    const heading = element("h2", {}, "Thank you!");
    say("fvlab-done", heading, "Your answers are saved.", p);
    setTimeout(() => window.location.assign(target), settings.redirect_delay_ms);
  }

  main();
})();
