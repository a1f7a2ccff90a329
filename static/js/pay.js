/* The payment page: collect the card with Stripe.js, then let the server charge it.
 *
 * Nothing is asked of Stripe before the driver presses Pay. Then the page asks
 * the server for a SetupIntent, stripe.confirmCardSetup() saves the card on it
 * and gives a PaymentMethod id, which the form posts; the server authorises the
 * payment and confirms the reservation. A card saved on the driver's account
 * (offered as a choice) is posted as it is: one tap. Works with Stripe's own Stripe.js and
 * with localstripe's stand-in (development and tests).
 */
(function () {
  "use strict";

  var form = document.getElementById("pay-form");
  if (!form) return;
  var button = document.getElementById("pay-button");
  var errors = document.getElementById("card-errors");
  var mountPoint = document.getElementById("card-element");
  var buttonText = button.textContent;
  var holdOver = false;

  // The page's language (<html lang>, set by the server): French or English.
  var FRENCH_PAGE = (document.documentElement.lang || "").indexOf("fr") === 0;
  var FRENCH = {
    "Your card was declined. Try another card.": "Votre carte a été refusée. Essayez une autre carte.",
    "We could not check this card. Check its details and try again.":
      "Nous n’avons pas pu vérifier cette carte. Vérifiez ses informations et réessayez.",
    "The card form could not be loaded. Check your connection, then reload the page.":
      "Le formulaire de carte n’a pas pu être chargé. Vérifiez votre connexion, puis rechargez la page.",
    "Card number": "Numéro de carte",
    "Expiry month (MM)": "Mois d’expiration (MM)",
    "Expiry year (YY)": "Année d’expiration (AA)",
    "Security code (CVC)": "Code de sécurité (CVC)",
    "Postal code": "Code postal",
    "Paying…": "Paiement…",
    "Checking your card…": "Vérification de votre carte…",
  };
  function t(english) {
    return (FRENCH_PAGE && FRENCH[english]) || english;
  }

  function showError(message) {
    errors.textContent = message;
  }

  function reset() {
    button.disabled = holdOver;
    button.textContent = buttonText;
    form.removeAttribute("aria-busy");
  }

  // Errors worth showing as they are come from Stripe with a type; anything else
  // (a network failure, a script error) gets a plain sentence.
  function messageOf(error) {
    if (error && error.type && error.message) return error.message;
    if (error && error.code === "card_declined") return t("Your card was declined. Try another card.");
    return t("We could not check this card. Check its details and try again.");
  }

  if (typeof window.Stripe !== "function") {
    showError(t("The card form could not be loaded. Check your connection, then reload the page."));
    return;
  }

  var stripe = window.Stripe(form.getAttribute("data-publishable-key"));
  var card = stripe.elements().create("card", {
    hidePostalCode: false,
    style: { base: { fontSize: "16px", color: "#102030" } },
  });
  card.mount(mountPoint);

  // localstripe's stand-in draws bare inputs named only by placeholders: label them.
  // (Stripe's own card field lives in an iframe that labels itself.)
  var names = {
    number: t("Card number"),
    exp_month: t("Expiry month (MM)"),
    exp_year: t("Expiry year (YY)"),
    cvc: t("Security code (CVC)"),
    postal_code: t("Postal code"),
  };
  mountPoint.querySelectorAll("input").forEach(function (input) {
    var name = names[input.getAttribute("placeholder")];
    if (name && !input.getAttribute("aria-label")) input.setAttribute("aria-label", name);
    input.setAttribute("inputmode", input.getAttribute("placeholder") === "postal_code" ? "text" : "numeric");
    input.setAttribute("autocomplete", "off");
  });

  card.on("change", function (event) {
    if (event && event.error) showError(event.error.message);
    else showError("");
  });
  button.disabled = false;

  document.addEventListener("countdown:end", function () {
    holdOver = true;
    button.disabled = true;
    var notice = document.getElementById("hold-over");
    if (notice) notice.hidden = false;
  });

  // Pay in one tap: a saved card needs no card form; "A new card" shows it.
  var newCard = document.getElementById("new-card");
  function savedChoice() {
    var checked = form.querySelector("input[name=card_choice]:checked");
    return checked && checked.value !== "new" ? checked.value : "";
  }
  form.querySelectorAll("input[name=card_choice]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      newCard.hidden = savedChoice() !== "";
      showError("");
    });
  });

  var busy = false;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy || holdOver) return;
    busy = true;
    button.disabled = true;
    var saved = savedChoice();
    if (saved) {
      button.textContent = t("Paying…");
      form.setAttribute("aria-busy", "true");
      form.querySelector("input[name=payment_method]").value = saved;
      form.submit();
      return;
    }
    button.textContent = t("Checking your card…");
    form.setAttribute("aria-busy", "true");
    showError("");

    fetch(form.getAttribute("data-setup-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": form.querySelector("input[name=csrfmiddlewaretoken]").value },
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw { type: "server", message: body.detail };
          return body.client_secret;
        });
      })
      .then(function (secret) {
        return stripe.confirmCardSetup(secret, { payment_method: { card: card } });
      })
      .then(function (result) {
        if (result && result.error && result.error.code === "setup_intent_unexpected_state") {
          // A card was saved for this booking already and then declined: Stripe
          // will not set the same SetupIntent up twice, so send the new card as is.
          return stripe.createPaymentMethod({ type: "card", card: card }).then(function (created) {
            if (created && created.paymentMethod) return { id: created.paymentMethod.id };
            return { error: (created && created.error) || result.error };
          });
        }
        if (!result || result.error) return { error: result && result.error };
        var method = result.setupIntent.payment_method;
        return { id: typeof method === "string" ? method : method.id };
      })
      .catch(function (error) {
        return { error: error };
      })
      .then(function (outcome) {
        if (!outcome.id) {
          busy = false;
          reset();
          showError(messageOf(outcome.error));
          return;
        }
        button.textContent = t("Paying…");
        form.querySelector("input[name=payment_method]").value = outcome.id;
        form.submit();
      });
  });
})();
