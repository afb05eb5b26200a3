/*
 * The causal-understanding experiment (jsPsych 8), served by `fvlab study serve`.
 *
 * Flow: enrol (POST api/participants, with Prolific's PROLIFIC_PID, STUDY_ID, SESSION_ID
 * from the URL) → preload images → instructions → practice with feedback, repeated until all
 * practice answers are right or the allowed attempts are used → main and catch trials →
 * submit all answers at once (retried on network errors) → completion screen → redirect to
 * the configured completion URL (Prolific's, or the server's own page).
 *
 * `?simulate=data-only` or `?simulate=visual` runs jsPsych.simulate() instead of a person;
 * `&sim_rt_ms=N` makes every simulated response take N ms (fast visual runs in tests).
 * All URLs are relative, so the page works under a reverse-proxy prefix (with trailing "/").
 */
/* global initJsPsych, jsPsychPreload, jsPsychInstructions, jsPsychHtmlButtonResponse,
   jsPsychOcclusionChoice, jsPsychModule */
(function () {
  "use strict";

  const display = document.getElementById("fvlab-experiment");

  function escapeHtml(text) {
    const div = document.createElement("div");
    div.textContent = String(text);
    return div.innerHTML;
  }

  function say(html, id) {
    display.innerHTML = `<div class="fvlab-message" id="${id || "fvlab-message"}">${html}</div>`;
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
        if (result.ok) return { stored: true };
        if (result.status === 409 && k > 0) return { stored: true };
        if (result.status < 500) return { stored: false, error: result.payload.detail };
        lastError = `server error ${result.status}`;
      } catch (err) {
        lastError = err.message;
      }
      await sleep(Math.min(1000 * 2 ** k, 8000));
    }
    return { stored: false, error: lastError };
  }

  function instructionPages(condition) {
    const refs =
      condition === "none"
        ? "In this study you will <b>not</b> see example images of what the unit likes: " +
          "use your own judgement."
        : "At the top of each screen you see nine <b>reference images</b>: images the unit " +
          "responds strongly to. Use them to understand what the unit looks for.";
    return [
      "<h2>Welcome</h2><p>This study is about an artificial neural network that looks at " +
        "images. One of its <b>units</b> responds strongly to some image features and weakly " +
        "to others.</p><p>Your task is to predict how the unit reacts when part of an image " +
        "is covered.</p>",
      `<h2>Reference images</h2><p>${refs}</p>`,
      "<h2>The question</h2><p>Below the references you see an image (<i>original</i>) and " +
        "two copies of it, each with a different square patch covered (<i>left</i> and " +
        "<i>right</i>).</p><p>Which copy does the unit respond to <b>more</b>? The covered " +
        "part of that copy mattered less to the unit.</p>",
      "<h2>Answering</h2><p>Answer with the buttons <b>3 2 1 | 1 2 3</b>: the three on the " +
        "left choose the left image, the three on the right the right image. <b>3</b> means " +
        "you are sure, <b>1</b> that you are guessing.</p><p>First a few practice trials " +
        "show you whether you were right. Then the main part starts, without feedback.</p>",
    ];
  }

  async function main() {
    const params = new URLSearchParams(window.location.search);
    const simulateMode = params.get("simulate");
    const simRt = Number(params.get("sim_rt_ms")) || 0;
    /* Add simulation options to a trial when a fixed simulated response time was asked for. */
    const sim = (trial, data) =>
      simRt > 0 ? { ...trial, simulation_options: { data: { rt: simRt, ...data } } } : trial;
    const started = performance.now();
    say("Starting the study…", "fvlab-loading");
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
      say(`<p>Sorry, the study could not start: ${escapeHtml(err.message)}</p>`, "fvlab-error");
      return;
    }
    const settings = enrolment.settings;
    display.innerHTML = "";
    const jsPsych = initJsPsych({ display_element: display });
    jsPsych.data.addProperties({
      participant_id: enrolment.participant_id,
      condition: enrolment.condition,
    });
    let practiceAttempt = 0;

    const choiceTrial = (t) => sim({
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
      },
    }, {});
    const lastPracticePassed = () =>
      jsPsych.data
        .get()
        .filter({ fvlab_trial: true, kind: "practice", attempt: practiceAttempt })
        .values()
        .every((d) => d.correct === true);

    const images = new Set();
    for (const t of enrolment.practice.concat(enrolment.trials)) {
      for (const url of [...t.references, t.query, t.left, t.right]) images.add(url);
    }
    const timeline = [
      { type: jsPsychPreload, images: [...images], message: "Loading images…" },
      sim(
        {
          type: jsPsychInstructions,
          pages: instructionPages(enrolment.condition),
          show_clickable_nav: true,
          button_label_next: "Next",
          button_label_previous: "Back",
          data: { fvlab_part: "instructions" },
        },
        {
          view_history: instructionPages(enrolment.condition).map((_, i) => ({
            page_index: i,
            viewing_time: simRt,
          })),
        }
      ),
    ];
    if (enrolment.practice.length) {
      timeline.push({
        timeline: [
          sim({
            type: jsPsychHtmlButtonResponse,
            stimulus: () =>
              `<p>Practice round ${practiceAttempt + 1}: you will see whether you were right.</p>`,
            choices: ["Start practice"],
            on_finish: () => {
              practiceAttempt += 1;
            },
          }, {}),
          ...enrolment.practice.map(choiceTrial),
          sim({
            type: jsPsychHtmlButtonResponse,
            stimulus: () => {
              if (lastPracticePassed()) return "<p>All practice answers were right.</p>";
              if (practiceAttempt < settings.max_practice_attempts)
                return "<p>Not all answers were right. Please try the practice again.</p>";
              return "<p>The practice is over.</p>";
            },
            choices: ["Continue"],
          }, {}),
        ],
        loop_function: () =>
          !lastPracticePassed() && practiceAttempt < settings.max_practice_attempts,
      });
    }
    timeline.push(
      sim({
        type: jsPsychHtmlButtonResponse,
        stimulus:
          `<p>The main part starts now: ${enrolment.trials.length} trials without feedback.</p>`,
        choices: ["Start"],
      }, {})
    );
    timeline.push(...enrolment.trials.map(choiceTrial));

    if (simulateMode === "data-only" || simulateMode === "visual") {
      await jsPsych.simulate(timeline, simulateMode);
    } else {
      await jsPsych.run(timeline);
    }

    say("Saving your answers…", "fvlab-saving");
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
      practice_passed: enrolment.practice.length ? lastPracticePassed() : true,
      user_agent: navigator.userAgent.slice(0, 500),
      jspsych_data: all.values(),
    };
    const url = `api/participants/${encodeURIComponent(enrolment.participant_id)}/submission`;
    const result = await submitWithRetry(url, submission, 6);
    if (!result.stored) {
      const blob = encodeURIComponent(JSON.stringify(submission));
      say(
        `<p>Sorry, your answers could not be saved (${escapeHtml(result.error)}).</p>` +
          `<p><a download="answers.json" href="data:application/json,${blob}">Download ` +
          "them</a> and send the file to the researchers.</p>",
        "fvlab-error"
      );
      return;
    }
    const target = settings.completion_url;
    say(
      "<h2>Thank you!</h2><p>Your answers are saved.</p>" +
        `<p>You will be redirected in a moment, or <a id="fvlab-complete-link" ` +
        `href="${escapeHtml(target)}">click here</a>.</p>`,
      "fvlab-done"
    );
    setTimeout(() => window.location.assign(target), settings.redirect_delay_ms);
  }

  main();
})();
