/*
 * jsPsych 8 plugin "occlusion-choice": one trial of the causal-understanding task.
 *
 * Shows the reference images of a unit (0 or 9), the unoccluded query, and two occluded
 * copies of it, left and right. The participant answers with six buttons "3 2 1 | 1 2 3":
 * button 0..2 = left image with confidence 3, 2, 1; button 3..5 = right image with
 * confidence 1, 2, 3 (the same coding as fvlab.study.trials.decode_response).
 * With `correct_side` given and `feedback_ms` > 0 it shows feedback (practice trials).
 *
 * simulate(): "data-only" makes plausible data without a display; "visual" renders the
 * trial and clicks the chosen button, so jsPsych.simulate() can run the whole experiment.
 */
var jsPsychOcclusionChoice = (function (jspsych) {
  "use strict";

  const info = {
    name: "occlusion-choice",
    version: "1.0.0",
    parameters: {
      /** Reference images (URLs): what the unit responds to; may be empty. */
      references: { type: jspsych.ParameterType.IMAGE, array: true, default: [] },
      /** The query image without occlusion. */
      query: { type: jspsych.ParameterType.IMAGE, default: undefined },
      /** The occluded copy shown on the left. */
      left: { type: jspsych.ParameterType.IMAGE, default: undefined },
      /** The occluded copy shown on the right. */
      right: { type: jspsych.ParameterType.IMAGE, default: undefined },
      /** "left" or "right" when the answer may be revealed (practice), else null. */
      correct_side: { type: jspsych.ParameterType.STRING, default: null },
      /** How long feedback stays on screen (ms); 0 = no feedback. */
      feedback_ms: { type: jspsych.ParameterType.INT, default: 0 },
      /** Button labels, left to right. */
      choices: {
        type: jspsych.ParameterType.STRING,
        array: true,
        default: ["3", "2", "1", "1", "2", "3"],
      },
      /** Question shown above the buttons. */
      prompt: {
        type: jspsych.ParameterType.HTML_STRING,
        default:
          "Which occluded image makes the unit respond <b>more</b>? " +
          "Pick a side; the outer buttons mean you are more confident.",
      },
    },
    data: {
      /** Button index 0..5. */
      response: { type: jspsych.ParameterType.INT },
      /** "left" or "right". */
      chosen_side: { type: jspsych.ParameterType.STRING },
      /** 1 (unsure) .. 3 (sure). */
      confidence: { type: jspsych.ParameterType.INT },
      /** Response time in ms from the moment the images were shown. */
      rt: { type: jspsych.ParameterType.INT },
      /** true/false when correct_side was given, else null. */
      correct: { type: jspsych.ParameterType.BOOL },
    },
  };

  function decode(button) {
    return button < 3
      ? { chosen_side: "left", confidence: 3 - button }
      : { chosen_side: "right", confidence: button - 2 };
  }

  function img(src, cls, alt) {
    return `<img class="${cls}" src="${src}" alt="${alt}" draggable="false">`;
  }

  class OcclusionChoicePlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    render(display_element, trial) {
      const refs = trial.references.length
        ? `<div class="fvlab-refs-title">The unit responds strongly to images like these:</div>
           <div class="fvlab-refs">${trial.references
             .map((r, i) => img(r, "fvlab-ref", `reference ${i + 1}`))
             .join("")}</div>`
        : "";
      const buttons = trial.choices
        .map(
          (label, i) =>
            `<button type="button" class="jspsych-btn fvlab-choice fvlab-${
              i < 3 ? "left" : "right"
            }" data-choice="${i}">${label}</button>` + (i === 2 ? '<span class="fvlab-sep">|</span>' : "")
        )
        .join("");
      display_element.innerHTML = `
        <div class="fvlab-trial">
          ${refs ? `<div class="fvlab-refs-panel">${refs}</div>` : ""}
          <div class="fvlab-task">
            <div class="fvlab-options">
              <figure>${img(trial.left, "fvlab-option", "left occlusion")}<figcaption>left</figcaption></figure>
              <figure>${img(trial.query, "fvlab-query", "query")}<figcaption>original</figcaption></figure>
              <figure>${img(trial.right, "fvlab-option", "right occlusion")}<figcaption>right</figcaption></figure>
            </div>
            <div class="fvlab-prompt">${trial.prompt}</div>
            <div class="fvlab-buttons">${buttons}</div>
            <div class="fvlab-scale"><span>← left, sure</span><span>right, sure →</span></div>
            <div id="fvlab-feedback" class="fvlab-feedback"></div>
          </div>
        </div>`;
    }

    trial(display_element, trial) {
      this.render(display_element, trial);
      const start = performance.now();
      let answered = false;
      const finish = (button) => {
        if (answered) return;
        answered = true;
        const rt = Math.round(performance.now() - start);
        const decoded = decode(button);
        const correct =
          trial.correct_side === null ? null : decoded.chosen_side === trial.correct_side;
        for (const b of display_element.querySelectorAll("button.fvlab-choice")) {
          b.disabled = true;
        }
        const data = { response: button, ...decoded, rt, correct };
        if (trial.correct_side !== null && trial.feedback_ms > 0) {
          const box = display_element.querySelector("#fvlab-feedback");
          box.classList.add(correct ? "fvlab-right-answer" : "fvlab-wrong-answer");
          box.textContent = correct
            ? "Correct!"
            : `Wrong: the unit responds more to the ${trial.correct_side} image.`;
          this.jsPsych.pluginAPI.setTimeout(
            () => this.jsPsych.finishTrial(data),
            trial.feedback_ms
          );
        } else {
          this.jsPsych.finishTrial(data);
        }
      };
      for (const b of display_element.querySelectorAll("button.fvlab-choice")) {
        b.addEventListener("click", () => finish(parseInt(b.dataset.choice, 10)));
      }
    }

    simulate(trial, simulation_mode, simulation_options, load_callback) {
      if (simulation_mode === "data-only") {
        load_callback();
        this.jsPsych.finishTrial(this.simulationData(trial, simulation_options));
      } else if (simulation_mode === "visual") {
        const data = this.simulationData(trial, simulation_options);
        const display_element = this.jsPsych.getDisplayElement();
        this.trial(display_element, trial);
        load_callback();
        const button = display_element.querySelector(
          `button.fvlab-choice[data-choice="${data.response}"]`
        );
        this.jsPsych.pluginAPI.clickTarget(button, data.rt);
      }
    }

    simulationData(trial, simulation_options) {
      const random = this.jsPsych.randomization;
      const defaults = {
        response: random.randomInt(0, trial.choices.length - 1),
        rt: Math.round(random.sampleExGaussian(900, 150, 1 / 300, true)),
      };
      const data = this.jsPsych.pluginAPI.mergeSimulationData(defaults, simulation_options);
      Object.assign(data, decode(data.response));
      data.correct =
        trial.correct_side === null ? null : data.chosen_side === trial.correct_side;
      this.jsPsych.pluginAPI.ensureSimulationDataConsistency(trial, data);
      return data;
    }
  }
  OcclusionChoicePlugin.info = info;

  return OcclusionChoicePlugin;
})(jsPsychModule);
